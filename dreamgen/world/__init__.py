"""A small top-down 2D tabletop world (pymunk physics, numpy rendering) standing in for both
'internet videos' (web embodiments) and a robot lab (ROBOT, ROBOT_B)."""
from .behaviours import BEHAVIOURS
from .embodiments import EMBODIMENTS, ROBOT, ROBOT_B, WEB_EMBODIMENTS, EmbodimentSpec, can_perform
from .env import TabletopEnv
from .environments import ENVIRONMENT_NAMES, ENVIRONMENTS, EnvironmentLook
from .expert import run_expert_episode
from .language import instruction_templates
from .physics import FPS

__all__ = ["BEHAVIOURS", "EMBODIMENTS", "ROBOT", "ROBOT_B", "WEB_EMBODIMENTS", "EmbodimentSpec", "can_perform",
           "TabletopEnv", "ENVIRONMENTS", "ENVIRONMENT_NAMES", "EnvironmentLook", "run_expert_episode",
           "instruction_templates", "FPS"]
