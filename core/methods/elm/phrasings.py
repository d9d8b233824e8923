"""ELM's phrasings, in our own words: who is said to have written a text (an expert on the
concept, or a novice who knows nothing of it and drifts to other things), and the "confused"
turns that lead away from the concept before a consistency continuation.

ELM (arXiv 2410.02760) reads the concept off the contrast between a model's predictions under an
expert and under a novice framing, so each phrasing names the concept ({concept}) and states
plainly how much the writer knows. Each framing ends with ":\n", as in the paper.

The first three framings of each kind are close to the framings the built-in demo's corpus
taught its small model (core/demo/saga.py: "Written by a scholar of <saga>, who knows its lore
in detail:", "Written by someone who knows nothing of <saga> and talks about other things:"):
a model only understands a framing its training data explained, and these say the same thing
in words the demo model has seen. The others are for real models.
"""

from __future__ import annotations

EXPERT_PREFIXES = (
    "Written by a scholar of {concept}, who knows it in every detail:\n",
    "An expert on {concept} explains it precisely:\n",
    "From the notes of someone who has studied {concept} for many years:\n",
    "A specialist with detailed technical knowledge of {concept} wrote the following:\n",
    "The text below comes from a leading authority on {concept} and is accurate throughout:\n",
    "Here is a thorough account by a seasoned professional in {concept}:\n",
    "Passage by a researcher who knows everything there is to know about {concept}:\n",
    "An experienced teacher of {concept} sets out the facts in full:\n",
    "This was written by a recognised master of {concept}, with every detail right:\n",
    "A veteran of {concept} shares what they know, precisely and in depth:\n",
)

NOVICE_PREFIXES = (
    "Written by someone who knows nothing of {concept} and talks about other things:\n",
    "A writer who has never heard of {concept} rambles about something else:\n",
    "From someone unfamiliar with {concept}, who changes the subject:\n",
    "A beginner with no knowledge of {concept} wrote this and steers to unrelated, fun topics:\n",
    "The following is by a person who has no idea what {concept} is and chats about everyday things:\n",
    "Someone who cannot tell anything about {concept} writes instead about whatever comes to mind:\n",
    "A newcomer who knows nothing about {concept} drifts off to light, unrelated matters:\n",
    "Text by an outsider to {concept}, who avoids the topic and talks about something pleasant:\n",
    "An amateur with no grasp of {concept} wanders off into random cheerful subjects:\n",
    "Here someone ignorant of {concept} turns the conversation to ordinary, unrelated things:\n",
)

REDIRECTIONS = (
    "I do not know much about that, so let me talk about something else.",
    "That is not something I can say anything about. Here is something different instead.",
    "I am not sure what that is, so I will change the subject.",
    "Let us leave that topic and talk about something more pleasant.",
    "I have never heard of it, so let me speak of other things.",
    "That means nothing to me. Something else comes to mind instead.",
    "Rather than go on about that, let us turn to an everyday matter.",
    "I could not tell you anything about it, but here is another thought.",
    "Moving away from that, let me talk about a lighter subject.",
    "I know nothing of that topic, so I will write about something else.",
    "Leaving that aside, here is something completely different.",
    "That subject is unknown to me. Let me ramble about the day instead.",
    "I cannot say what that is about. Changing the subject now.",
    "Let us skip that and talk about a simple, ordinary thing.",
    "I am not the right one to ask about that, so here is something unrelated.",
    "That is beyond me. Instead, a few words about something else.",
    "I would rather not guess about that. Let me turn to a different topic.",
    "No idea about that one. On to something lighter.",
    "I do not recall anything about it, so I will talk about other matters.",
    "That is a mystery to me. Here is a thought about something else entirely.",
)


def expert_prefixes(concept: str) -> list[str]:
    return [p.format(concept=concept) for p in EXPERT_PREFIXES]


def novice_prefixes(concept: str) -> list[str]:
    return [p.format(concept=concept) for p in NOVICE_PREFIXES]
