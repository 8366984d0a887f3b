"""The paper's judge: Qwen2.5-VL asked about a video's instruction following (IF) and physics (PA).

DreamGen Bench samples frames evenly from each generated video and asks Qwen2.5-VL whether the
robot did the task (IF, answered 0 or 1) and whether the video follows physical laws (PA). The
official prompt strings were not available offline here; IF_PROMPT and PA_PROMPT follow the
paper's description (replace them with the official text when it is at hand). The answer is
read from the model's next-token distribution over "1" and "0", so a score is the probability
of "1" and the 0/1 answer is its rounding: no free-text parsing.

Frames are given as a sequence of images (one <|image_pad|> block each). The inputs are built
here from the tokenizer and the image processor, as Qwen2_5_VLProcessor would build them
(each <|image_pad|> expanded to the image's merged patch count), because that processor also
insists on a video processor that needs torchvision, which this environment does not have.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

IF_PROMPT = ("These are {n} frames sampled evenly from a video of a robot. The task is: \"{instruction}\". "
             "Does the robot complete the task in the video? Answer 1 for yes or 0 for no, and nothing else.")
PA_PROMPT = ("These are {n} frames sampled evenly from a video. Does the video follow physical laws (nothing "
             "appears, vanishes, teleports, changes shape or colour, or passes through another object)? "
             "Answer 1 for yes or 0 for no, and nothing else.")
SYSTEM = "You are a helpful assistant."


def sample_frames(frames: np.ndarray, n: int) -> np.ndarray:
    """n frames (n, H, W, 3) taken evenly from (T, H, W, 3), first and last included."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"a video is (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    return frames[np.round(np.linspace(0, len(frames) - 1, min(n, len(frames)))).astype(int)]


def chat_text(prompt: str, n_images: int) -> str:
    """The Qwen2.5-VL chat format with n image blocks before the question."""
    vision = "<|vision_start|><|image_pad|><|vision_end|>" * n_images
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{vision}{prompt}<|im_end|>\n"
            f"<|im_start|>assistant\n")


def encode(tokenizer, image_processor, prompt: str, images: list, merge: int) -> dict:
    """input_ids (1, L), attention_mask, pixel_values, image_grid_thw for one chat turn with images."""
    vis = image_processor(images=images, return_tensors="pt")
    text = chat_text(prompt, len(images))
    parts = text.split("<|image_pad|>")
    counts = [int(g.prod()) // (merge * merge) for g in vis["image_grid_thw"]]
    text = parts[0] + "".join("<|image_pad|>" * c + p for c, p in zip(counts, parts[1:]))
    tok = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    return dict(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"],
                pixel_values=vis["pixel_values"], image_grid_thw=vis["image_grid_thw"])


@dataclass
class VLMJudge:
    model: torch.nn.Module
    tokenizer: object
    image_processor: object
    frames: int = 8

    @classmethod
    def load(cls, name_or_path: str, frames: int = 8, device: str | None = None) -> "VLMJudge":
        """A Qwen2.5-VL checkpoint by Hugging Face id or local folder (bf16 on a GPU)."""
        from transformers import AutoImageProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(name_or_path, dtype=dtype).to(device).eval()
        return cls(model, AutoTokenizer.from_pretrained(name_or_path),
                   AutoImageProcessor.from_pretrained(name_or_path), frames)

    def _answer_ids(self) -> tuple[int, int]:
        tok = self.tokenizer
        ids = [tok.encode(d, add_special_tokens=False) for d in ("1", "0")]
        if any(len(i) != 1 for i in ids):
            raise ValueError(f"the tokenizer splits '1' or '0' into several tokens: {ids}")
        return ids[0][0], ids[1][0]

    @torch.no_grad()
    def p_yes(self, frames: np.ndarray, prompt: str) -> float:
        """Probability that the model answers "1" (vs "0") about these frames."""
        from PIL import Image

        images = [Image.fromarray(f) for f in sample_frames(frames, self.frames)]
        merge = self.model.config.vision_config.spatial_merge_size
        inputs = encode(self.tokenizer, self.image_processor, prompt.replace("{n}", str(len(images))), images, merge)
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        logits = self.model(**inputs).logits[0, -1].float()
        one, zero = self._answer_ids()
        return float(torch.softmax(logits[[one, zero]], 0)[0])

    def judge(self, frames: np.ndarray, instruction: str) -> dict:
        """IF and PA of one video: probabilities of "1" and their 0/1 roundings."""
        p_if = self.p_yes(frames, IF_PROMPT.replace("{instruction}", instruction))
        p_pa = self.p_yes(frames, PA_PROMPT)
        return dict(if_vlm=float(p_if > 0.5), if_vlm_p=p_if, pa_vlm=float(p_pa > 0.5), pa_vlm_p=p_pa)
