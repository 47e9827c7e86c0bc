"""A scripted reader for padis-study demonstrations: logs in to a running ``padis-study serve`` like the
page does and answers every case by a stated rule applied to what the page shows, never the key:

  ssim  choose the candidate whose served 8-bit image has the highest SSIM to the served reference
  psnr  ... the highest PSNR to the served reference

  python scripts/study_scripted_reader.py http://127.0.0.1:8765 --reader ssim-bot --rule ssim
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import urllib.parse
import urllib.request

import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def call(url, path, token=None, body=None):
    req = urllib.request.Request(url + path, method="POST" if body is not None else "GET",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "X-Session": token or ""})
    with urllib.request.urlopen(req, timeout=60) as resp:
        data = resp.read()
        return data if resp.headers.get("Content-Type") == "image/png" else json.loads(data)


def score(rule, ref, img):
    if rule == "ssim":
        return structural_similarity(ref, img, data_range=255.0)
    return peak_signal_noise_ratio(ref, img, data_range=255.0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url", help="server address, e.g. http://127.0.0.1:8765")
    p.add_argument("--reader", required=True, help="reader id")
    p.add_argument("--rule", choices=("ssim", "psnr"), required=True, help="how to choose")
    args = p.parse_args(argv)
    host = urllib.parse.urlsplit(args.url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):  # it reads a local study server, never the network
        p.error(f"url {args.url!r}: only a study server on this machine (127.0.0.1 / localhost) is allowed")
    state = call(args.url, "/api/login", body={"reader": args.reader})
    token = state["token"]
    while state["next"] is not None:
        n = state["next"]
        case = call(args.url, f"/api/case/{n}", token)
        imgs = [np.asarray(Image.open(io.BytesIO(call(args.url, f"/api/case/{n}/image/{pos}", token))),
                           dtype=np.float64) for pos in range(case["k"] + 1)]
        scores = [score(args.rule, imgs[0], x) for x in imgs[1:]]
        choice = int(np.argmax(scores)) + 1
        state = call(args.url, "/api/answer", token,
                     {"case": n, "choice": choice, "comment": f"scripted: highest {args.rule.upper()}"})
    print(f"{args.reader}: answered {state['done']} of {state['n_cases']} cases by highest {args.rule.upper()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
