"""`fau predict` on a real video: speed against decoding alone, and memory.

    python benchmarks/predict.py [--quick] [--device auto|cpu|cuda] [--threads 2]

Video: ../shared/videos/WolfgangLanger_Pexels.mp4 (640 x 360, 472 frames,
one face). Models: the embedded default's architecture (config/config.yaml's
`model:` section, read now, so a smaller default is measured as it is) and
the paper-size one (config/bp4d.yaml's: ResNet-50, 256), with random
weights (the work per frame does not depend on them), and the preprocessing
of config/config.yaml recorded in the model file as training records it.

(a) decode alone: the frames as `fau predict` reads them (child process,
    colour + grey), nothing else;
(b) `fau predict` (`fau.predict.Predictor.run`: decode, landmark tracking,
    alignment, crop JPEG round trip, network in batches of 16, CSV), with
    the embedded default model;
(c) the same with the paper-size model, on the first --paper-frames frames
    (printed beside (b), no bar).
(a) and (b) alternate in --repeats rounds after a warm-up; medians.
torch threads: --threads (default 2: the issue's setting).

Memory: peak RSS of `fau predict` (its process + the frame reader's) on
1,000- and 10,000-frame inputs (--quick: 300 and 3,000), made here by
looping the video into temporary mp4 files; each run in a fresh process.

Bars: (b) >= 30 frames/s on the CPU; peak RSS(10,000) / peak RSS(1,000)
<= 1.2 (frames are streamed, never collected). With a GPU also the
paper-size model on CUDA (batch 64, bf16 autocast and fp32, no bar);
without one a line says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C
import cv2
import torch
import yaml

FPS_BAR = 30.0
RSS_BAR = 1.2
VIDEO = C.ROOT.parent / "shared" / "videos" / "WolfgangLanger_Pexels.mp4"


def model_file(path: Path, model_section: dict) -> Path:
    """A model.pt of `model_section`'s architecture, random weights, with
    the metadata training writes (config/config.yaml's preprocessing)."""
    from fau import atomic
    from fau.config import deep_merge, from_dict, load_yaml, to_plain
    from fau.model import build_model

    base = load_yaml(C.ROOT / "config" / "config.yaml")
    cfg = from_dict(deep_merge(base, {"model": model_section}))
    aus = cfg.dataset.au_names
    torch.manual_seed(0)
    net = build_model(cfg.model, 2 * len(aus)).eval()
    atomic.torch_save(path, {"state_dict": net.state_dict(), "model_config": to_plain(cfg.model), "aus": aus,
                             "normalization": cfg.train.normalization, "epochs": 0,
                             "preprocessing": {"landmarks": to_plain(cfg.landmarks), "crops": to_plain(cfg.crops)}})
    return path


def model_section(config: str) -> dict:
    section = yaml.safe_load((C.ROOT / "config" / config).read_text()).get("model") or {}
    section = dict(section)
    section["backbone_weights"] = None
    return section


def clip(src: Path, dst: Path, frames: int) -> Path:
    """The first `frames` frames of `src`, looping it when shorter, as mp4."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    n = 0
    while n < frames:
        ok, img = cap.read()
        if not ok:
            cap.release()
            cap = cv2.VideoCapture(str(src))
            continue
        out.write(img)
        n += 1
    cap.release()
    out.release()
    return dst


def rss_child(video: str, model: str, out_csv: str, threads: int) -> None:
    """Child mode: predict `video`, print this process's and its reader's peak RSS."""
    import resource

    from fau.media import open_input
    from fau.predict import Predictor

    predictor = Predictor(model, device="cpu", threads=threads)
    summary = predictor.run(open_input(video), out_csv, progress=False)
    reader = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # the frame reader (joined)
    print(json.dumps({"frames": summary.frames, "parent": C.peak_rss_bytes(), "reader": reader,
                      "seconds": summary.seconds}))


def measure_rss(video: Path, model: Path, work: Path, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--rss-child", str(video), str(model), str(work / "rss.csv"), str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=C.ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"rss child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = C.parser(__doc__)
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds (default 3; --quick 1)")
    ap.add_argument("--paper-frames", type=int, default=None, help="frames for the paper-size model (default 96)")
    ap.add_argument("--rss-frames", default=None, help="the two input lengths for the memory bar (default 1000,10000)")
    args = ap.parse_args()
    threads = C.setup_threads(args.threads or 2)
    repeats = args.repeats or (1 if args.quick else 3)
    paper_frames = args.paper_frames or (32 if args.quick else 96)
    small, large = (int(v) for v in (args.rss_frames or ("300,3000" if args.quick else "1000,10000")).split(","))
    if not VIDEO.is_file():
        raise SystemExit(f"{VIDEO}: benchmark video missing")
    from fau.media import open_input
    from fau.predict import Predictor

    C.heading("fau predict: decode alone vs the whole chain")
    print(C.cpu_info())
    ok = True
    with tempfile.TemporaryDirectory(prefix="fau-bench-predict-") as tmp:
        work = Path(tmp)
        embedded = model_file(work / "embedded.pt", model_section("config.yaml"))
        paper = model_file(work / "paper.pt", model_section("bp4d.yaml"))
        media = open_input(VIDEO)
        pred = Predictor(embedded, device="cpu", threads=threads)
        print(f"video {VIDEO.name}: {media.n_frames} frames {cv2.VideoCapture(str(VIDEO)).get(3):.0f}x"
              f"{cv2.VideoCapture(str(VIDEO)).get(4):.0f}; embedded model {pred.meta['model_config']['backbone']} "
              f"{pred.input_size} px, batch {pred.batch_size}, {threads} threads")

        def decode() -> None:
            n = sum(1 for _ in media.frames(pred.landmarks_cfg.read_ahead))
            assert n == media.n_frames

        def predict() -> None:
            s = pred.run(media, work / "out.csv", progress=False)
            assert s.frames == media.n_frames and s.faces > 0.9 * s.frames

        times = C.time_interleaved({"decode": decode, "predict": predict}, repeats, 1, progress="embedded")
        n = media.n_frames
        t_dec, t_pred = C.median(times["decode"]), C.median(times["predict"])

        short = clip(VIDEO, work / "short.mp4", paper_frames)
        short_media = open_input(short)
        pred_paper = Predictor(paper, device="cpu", threads=threads)
        pred_paper.run(short_media, work / "paper.csv", progress=False)  # warm-up
        t_paper = C.median(C.time_interleaved({"paper": lambda: pred_paper.run(short_media, work / "paper.csv",
                                                                                progress=False)},
                                               max(1, repeats // 2), 0, progress="paper")["paper"])
        rows = [{"what": "(a) decode alone", "frames": n, "median s": t_dec, "repeats": C.spread(times["decode"]),
                 "frames/s": n / t_dec, "time / decode": 1.0},
                {"what": f"(b) fau predict, embedded ({pred.meta['model_config']['backbone']}, {pred.input_size})",
                 "frames": n, "median s": t_pred, "repeats": C.spread(times["predict"]), "frames/s": n / t_pred,
                 "time / decode": t_pred / t_dec},
                {"what": f"(c) fau predict, paper size ({pred_paper.meta['model_config']['backbone']}, "
                         f"{pred_paper.input_size})", "frames": paper_frames, "median s": t_paper, "repeats": "",
                 "frames/s": paper_frames / t_paper, "time / decode": (t_paper / paper_frames) / (t_dec / n)}]
        print(C.table(rows))
        ok &= C.bar("predict[cpu, embedded] frames/s", n / t_pred, FPS_BAR, ">=",
                    f"paper size {paper_frames / t_paper:.1f} frames/s; decode alone {n / t_dec:.0f} frames/s")

        C.heading(f"peak RSS: {small} vs {large} frames (looped video, fresh process each)")
        t0 = time.perf_counter()
        v_small = clip(VIDEO, work / f"loop{small}.mp4", small)
        v_large = clip(VIDEO, work / f"loop{large}.mp4", large)
        print(f"wrote the looped inputs in {time.perf_counter() - t0:.0f} s", flush=True)
        res = {k: measure_rss(v, embedded, work, threads) for k, v in (("small", v_small), ("large", v_large))}
        rss_rows = [{"frames": r["frames"], "predict MiB": C.mib(r["parent"]), "reader MiB": C.mib(r["reader"]),
                     "sum MiB": C.mib(r["parent"] + r["reader"]), "frames/s": r["frames"] / r["seconds"]}
                    for r in res.values()]
        print(C.table(rss_rows))
        total = {k: r["parent"] + r["reader"] for k, r in res.items()}
        ok &= C.bar(f"predict peak RSS {large} / {small} frames", total["large"] / total["small"], RSS_BAR, "<=")

        C.heading("CUDA")
        if torch.cuda.is_available() and args.device in ("auto", "cuda"):
            print(C.gpu_info())
            gpu_rows = []
            for precision in ("bf16", "fp32"):
                p = Predictor(paper, device="cuda", precision=precision, batch_size=64)
                p.run(media, work / "gpu.csv", progress=False)  # warm-up (cudnn autotune)
                t = C.median(C.time_interleaved({"gpu": lambda: p.run(media, work / "gpu.csv", progress=False)},
                                                max(1, repeats), 0, device="cuda")["gpu"])
                gpu_rows.append({"model": "paper size (ResNet-50, 256)", "precision": precision, "batch": 64,
                                 "frames/s": n / t})
            print(C.table(gpu_rows))
        else:
            print("CUDA: skipped (no CUDA device available on this machine; the CUDA path runs the network in "
                  "batches of 64 under bf16 autocast)" if not torch.cuda.is_available()
                  else "CUDA: skipped (--device cpu)")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--rss-child":
        rss_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        sys.exit(0)
    sys.exit(main())
