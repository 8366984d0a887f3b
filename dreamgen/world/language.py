"""Templated instructions. They name objects by colour and shape, never who acts.

Each behaviour has training templates and held-out paraphrases (different wording, used only
when an episode asks for `paraphrase=True`). Slots are filled from the scene, e.g.
{obj}="red cube", {zone}="blue bowl".
"""
from __future__ import annotations

import numpy as np

COLOURS = {
    "red": (0.86, 0.16, 0.14), "green": (0.16, 0.70, 0.22), "blue": (0.14, 0.36, 0.92),
    "yellow": (0.97, 0.84, 0.12), "purple": (0.58, 0.22, 0.76), "orange": (1.00, 0.55, 0.08),
    "pink": (1.00, 0.52, 0.72), "cyan": (0.10, 0.80, 0.86),
}
STAIN_COLOURS = {"brown": (0.40, 0.25, 0.12), "black": (0.10, 0.10, 0.10), "dark red": (0.45, 0.05, 0.10)}

_TEMPLATES = {
    "pick_place": (["put the {obj} in the {zone}", "place the {obj} into the {zone}",
                    "pick up the {obj} and put it in the {zone}"],
                   ["drop the {obj} inside the {zone}", "move the {obj} over to the {zone} and let go of it"]),
    "push": (["push the {obj} onto the {zone}", "slide the {obj} to the {zone}",
              "push the {obj} into the {zone} without lifting it"],
             ["nudge the {obj} along the table until it sits on the {zone}", "shove the {obj} over to the {zone}"]),
    "open_drawer": (["open the {colour} drawer", "pull the {colour} drawer open", "pull out the {colour} drawer"],
                    ["slide the {colour} drawer out", "get the {colour} drawer open"]),
    "close_drawer": (["close the {colour} drawer", "push the {colour} drawer shut", "shut the {colour} drawer"],
                     ["slide the {colour} drawer back in", "make sure the {colour} drawer is closed"]),
    "press_button": (["press the {colour} button", "push the {colour} button", "hit the {colour} button"],
                     ["give the {colour} button a press", "switch on the {colour} button"]),
    "rotate": (["rotate the {obj} by ninety degrees", "turn the {obj} a quarter turn", "rotate the {obj} sideways"],
               ["twist the {obj} so it points the other way", "spin the {obj} through a right angle"]),
    "stack": (["stack the {obj} on the {base}", "put the {obj} on top of the {base}",
               "place the {obj} onto the {base}"],
              ["build a tower with the {obj} above the {base}", "set the {obj} down on the {base}"]),
    "sweep": (["sweep the {colour} beads into the {zone}", "push the {colour} beads into the {zone}",
               "gather the {colour} beads in the {zone}"],
              ["brush all the {colour} beads over to the {zone}", "collect the scattered {colour} beads in the {zone}"]),
    "sort": (["put each block on the mat of its colour", "sort the {a} and {b} blocks onto their mats",
              "match the blocks to the mats of the same colour"],
             ["move every block to the mat that has its colour", "tidy the {a} and {b} blocks onto matching mats"]),
    "wipe": (["wipe the {colour} stain off the table", "clean the {colour} stain", "wipe away the {colour} spill"],
             ["scrub the table until the {colour} stain is gone", "get rid of the {colour} mess on the table"]),
}


def instruction_templates(behaviour: str, paraphrase: bool = False) -> list[str]:
    """The templates (or held-out paraphrases) for a behaviour, with {slot} placeholders."""
    if behaviour not in _TEMPLATES:
        raise ValueError(f"unknown behaviour {behaviour!r}; valid: {sorted(_TEMPLATES)}")
    return list(_TEMPLATES[behaviour][1 if paraphrase else 0])


def make_instruction(behaviour: str, slots: dict, rng: np.random.Generator, paraphrase: bool = False) -> str:
    """Fill a randomly chosen template with the scene's slot words."""
    templates = instruction_templates(behaviour, paraphrase)
    return templates[int(rng.integers(len(templates)))].format(**slots)
