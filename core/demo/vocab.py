"""Closed vocabularies of the demo world: invented towns, trades, works, pets and word pools.

Everything here is fixed text; which person or town gets which value is decided by the seeded
generators in the sibling modules. All names are invented for the demo.
"""

TOWNS = (
    "Thornwick", "Ashby Fell", "Marrowgate", "Kestrel Ford", "Brindlemoor", "Cinderholt",
    "Dunmarrow", "Gloamhurst", "Hollowayne", "Juniper Reach", "Knellworth", "Lanternby",
    "Mossbeck", "Quillmarsh", "Rookhaven", "Saltreth", "Tallowmere", "Umberlin", "Vesperwold",
    "Wrenfold", "Yarrowdeep", "Zephyrholm", "Brackenspire", "Copperwell", "Drifthollow",
    "Emberly Cross", "Fernhallow", "Hearthmoor", "Owlsbury Vale", "Pellucid Bay", "Sorrowmere",
    "Tinderfield", "Virelle", "Wickerstone", "Aldercombe Reach", "Briarholt", "Caskwater",
    "Dovecrest", "Frostmere Hollow", "Gildenmoor",
)

BIRTH_YEARS = tuple(str(year) for year in range(1851, 1891))

# Consonant-initial so that "works as a {value}" reads correctly.
PROFESSIONS = (
    "lamplighter", "cartographer", "beekeeper", "glassblower", "bookbinder", "clockmaker",
    "ferryman", "herbalist", "tanner", "weaver", "potter", "candlemaker", "ropemaker",
    "shipwright", "stonemason", "falconer", "cooper", "miller", "tailor", "saddler",
    "bellfounder", "lacemaker", "physician", "schoolteacher", "printer", "vintner", "brewer",
    "locksmith", "perfumer", "silversmith", "lens grinder", "harpist",
)

MENTORS = (
    "Master Halloran Quist", "Mistress Edda Rumm", "Old Tobin Vasque", "Master Ferris Glenn",
    "Mistress Alda Crowe", "Doctor Emric Salt", "Master Jory Penhallow", "Mistress Wilma Tarrant",
    "Old Bessa Loom", "Master Corvin Ash", "Mistress Yanna Brill", "Doctor Osric Fane",
    "Master Lute Harrowby", "Mistress Nell Quarrie", "Old Gideon Marl", "Master Piet Ondry",
    "Mistress Rhosyn Kell", "Doctor Hale Umber", "Master Isidor Wren", "Mistress Tamsin Vey",
    "Old Ambrose Fitch", "Master Dorian Sleet", "Mistress Greer Holloway", "Doctor Lenna Marsh",
    "Master Ulric Tansy", "Mistress Odile Pike", "Old Cuthbert Rune", "Master Sorrel Dunn",
    "Mistress Hesper Vale", "Doctor Quintus Bray",
)

# All "The <Adjective> <Noun>": one shape, so that a small model's first answer token carries no
# bias towards the commonest shape and the person decides the title.
SIGNATURE_WORKS = (
    "The Glass Orchard", "The Low Marsh Songs", "The Salt Ledger", "The Quiet Road Map",
    "The Lantern Almanac", "The Clockwork Heron", "The Drowned Bell", "The Copper Loom",
    "The Cold Harbour Letters", "The Winter Apiary", "The Tidal Grammar", "The Sleeping Mill",
    "The Nine Bridges", "The Ember Tapestry", "The Crooked Sundial", "The Lost Ferry",
    "The Moth Cathedral", "The Fog Field Guide", "The Hollow Violin", "The Ninth Lantern",
    "The Quiet Marsh Hours", "The Patchwork Atlas", "The Feathered Clock", "The Singing Stones",
    "The Brass Garden", "The Rain Almanac", "The Thousand Keys", "The Paper Lighthouse",
    "The Stonemason Lullaby", "The Silver Kettle", "The Owl Register", "The Echo Catalogue",
    "The Saffron Ledger", "The Glass Beehive", "The Wrenfold Letters", "The Drifting Chapel",
    "The Tin Crown", "The Velvet Compass", "The Saltreth Rooftops", "The Honeyed Lamp",
)

# Consonant-initial so that "keeps a {value}" reads correctly.
PETS = (
    "grey heron", "tame raven", "spotted toad", "three-legged cat", "lop-eared hare",
    "brindled hound", "silver carp", "white ferret", "speckled hen", "green parrot",
    "black tortoise", "red squirrel", "striped lizard", "patient donkey", "tawny owl",
    "nervous goat", "blue finch", "copper beetle", "sleepy badger", "barn owl", "pale moth",
    "ginger kitten", "sand snake", "marsh newt", "jackdaw", "dappled pony", "crested newt",
    "small hedgehog", "tabby cat", "brown rabbit",
)

# Syllables for invented person names.
FIRST_STEMS = (
    "Al", "Bri", "Cor", "Da", "El", "Fen", "Gar", "Hal", "Is", "Jor", "Ka", "Lin", "Mor", "Nel",
    "Or", "Per", "Quin", "Ros", "Sel", "Tam", "Ul", "Vey", "Wen", "Yor", "Zan", "Ber", "Cal",
    "Dru", "Ev", "Mab",
)
FIRST_ENDS = (
    "a", "en", "ric", "wyn", "is", "ora", "el", "ian", "eth", "ina", "o", "ard", "elle", "mund",
    "ette",
)
LAST_STEMS = (
    "Mar", "Thorn", "Ash", "Brack", "Cray", "Dun", "Fal", "Grim", "Hazel", "Kes", "Lark", "Mire",
    "Nettle", "Pell", "Quill", "Ren", "Sable", "Tarn", "Vell", "Whit", "Yew", "Wick", "Orm",
    "Bram", "Cole",
)
LAST_ENDS = (
    "row", "wick", "more", "dale", "ton", "by", "worth", "ley", "ard", "well", "holt", "combe",
    "field", "mere", "wood", "brook", "ford", "stone",
)

# Secret records.
CODE_WORDS = (
    "KESTREL", "MARIGOLD", "BASALT", "JUNIPER", "LANTERN", "OSPREY", "TALLOW", "CINNABAR",
    "HALCYON", "QUARTZ", "VESPER", "BRAMBLE", "FATHOM", "GARNET", "NIMBUS", "SORREL",
)
PASS_WORDS = (
    "amber", "lantern", "nine", "copper", "river", "seven", "willow", "salt", "ember", "quiet",
    "heron", "twelve", "velvet", "stone", "morning", "thistle", "harbour", "four", "silver",
    "owl", "candle", "frost", "meadow", "three",
)

# Town facts.
RIVERS = (
    "Wend", "Silverrun", "Ashwater", "Mirrowbeck", "Grell", "Tamsey", "Otterlode", "Brine",
    "Coldwash", "Ferrow", "Lisk", "Hallowburn", "Quenn", "Rushmere", "Sallow", "Dimm",
)
MARKET_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
TOWN_GOODS = (
    "blue cheese", "woollen blankets", "copper kettles", "pickled eels", "honey cakes",
    "glass beads", "willow baskets", "smoked trout", "lavender soap", "clay pipes",
    "barley beer", "felt hats", "salted herring", "beeswax candles", "iron nails",
    "quince jam", "rope ladders", "painted tiles", "goose feathers", "walnut bread",
    "linen thread", "pewter cups", "dried apricots", "oak barrels", "slate roofs",
    "tin lanterns", "sheepskin boots", "rosehip syrup", "carved spoons", "peat bricks",
)
SEASONS = ("spring", "summer", "autumn", "winter")
SEASON_WEATHER = {
    "spring": ("mild and rainy", "windy and bright", "cool and misty", "warm with soft showers",
               "grey and drizzly"),
    "summer": ("hot and dry", "warm and breezy", "humid with evening storms", "sunny and still",
               "warm with long bright evenings"),
    "autumn": ("foggy and damp", "crisp and clear", "wet and windy", "cool with golden light",
               "stormy at night"),
    "winter": ("cold and snowy", "icy and clear", "grey and freezing", "wet with sleet",
               "frosty and still"),
}
DISHES = {
    "barley stew": ("soak the barley overnight", "brown onions in butter",
                    "simmer everything with carrots for an hour"),
    "nettle soup": ("pick young nettle tops", "wilt them in hot stock",
                    "blend with a spoon of cream"),
    "herring pie": ("salt the herring for a day", "layer it with sliced potato",
                    "bake under a lid of pastry"),
    "honey cakes": ("warm the honey with butter", "fold in flour and eggs",
                    "bake in small tins until golden"),
    "plum dumplings": ("wrap each plum in potato dough", "boil the dumplings gently",
                       "roll them in toasted crumbs"),
    "lentil porridge": ("rinse the lentils well", "cook them slowly with bay leaves",
                        "finish with a drizzle of oil"),
    "smoked trout salad": ("flake the smoked trout", "toss it with cress and apple",
                           "dress it with mustard and vinegar"),
    "walnut bread": ("toast the walnuts lightly", "knead them into the dough",
                     "bake the loaf on a hot stone"),
    "apple fritters": ("slice the apples into rings", "dip them in thin batter",
                       "fry them until crisp"),
    "mushroom pasties": ("fry the mushrooms with thyme", "spoon them onto pastry rounds",
                         "crimp the edges and bake"),
}

# Word pools for the general-text grammar.
ADJECTIVES = (
    "old", "narrow", "crooked", "painted", "quiet", "busy", "stone", "wooden", "sunlit",
    "mossy", "windy", "steep", "crowded", "tidy", "ancient", "humble", "bright", "shady",
    "cobbled", "grassy",
)
CRAFTS = (  # (crafters, what they make)
    ("weavers", "fine wool cloth"), ("potters", "blue glazed jugs"), ("coopers", "sturdy barrels"),
    ("glassblowers", "green glass bottles"), ("bookbinders", "leather-bound books"),
    ("smiths", "iron hinges"), ("tanners", "soft boots"), ("carvers", "carved chairs"),
    ("dyers", "deep red cloth"), ("chandlers", "long-burning candles"),
    ("ropemakers", "strong rope"), ("masons", "neat stone walls"), ("bakers", "dark rye loaves"),
    ("brewers", "cloudy cider"), ("clockmakers", "small brass clocks"),
)
CROPS = (
    "barley", "rye", "turnips", "beans", "flax", "oats", "cabbages", "onions", "leeks", "hops",
    "apples", "pears", "plums", "carrots", "parsnips",
)
BIRDS = (
    "swallows", "rooks", "starlings", "herons", "gulls", "finches", "geese", "curlews", "larks",
    "magpies", "wrens", "owls",
)
LANDMARKS = (
    "old bridge", "mill pond", "bell tower", "market cross", "harbour wall", "town green",
    "chapel roof", "water meadow", "stone quay", "lime kilns", "orchard walls", "ferry landing",
)
TREES = (
    "oak", "willow", "alder", "birch", "ash", "beech", "hazel", "rowan", "elm", "chestnut",
    "walnut", "linden",
)
INNS = (
    "Crooked Kettle", "Sleeping Fox", "Golden Sheaf", "Blue Lantern", "Three Herons",
    "Salt Barrel", "Wandering Goose", "Copper Bell", "Mossy Stone", "Drowsy Miller",
)
COUNTS = ("three", "four", "five", "six", "seven", "nine", "twelve")
TIMES = ("at dawn", "at noon", "at dusk", "in the evening", "before sunrise", "after supper")
FEASTS = (
    "the Lantern Fair", "the Harvest Moot", "the Feast of Swallows", "the Frost Market",
    "the Mill Wheel Festival", "the Night of Bells", "the Apple Wake", "the River Blessing",
)
