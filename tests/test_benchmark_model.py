import pytest

from edgenas.errors import DeviceError
from edgenas.hardware.benchmark_model import parse_benchmark_model

NEW = """\
INFO: STARTING!
INFO: Num threads: [4]
INFO: Graph: [/data/local/tmp/edgenas/models/op0001.tflite]
INFO: Loaded model /data/local/tmp/edgenas/models/op0001.tflite
INFO: The input model file size (MB): 0.0211
INFO: Initialized session in 5.579ms.
INFO: Running benchmark for at least 5 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=9 first=87112 curr=51629 min=51629 max=87112 avg=58147.4 std=11478 p5=51629 median=51962 p95=87112

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=1249964 curr=1240143 min=1238588 max=1252566 avg=1.24027e+06 std=2565 p5=1238753 median=1239807 p95=1247415

INFO: Inference timings in us: Init: 5579, First inference: 1357602, Warmup (avg): 1.3576e+06, Inference (avg): 1.24027e+06
INFO: Memory footprint delta from the start of the tool (MB): init=6.36328 overall=109.832
"""

OLD = """\
Loaded model mobilenet_v1_1.0_224_quant.tflite
Initialized session in 4.452ms
Running benchmark for 1 iterations
count=1 curr=146161

Running benchmark for 50 iterations
count=50 first=137789 curr=137254 min=137079 max=143416 avg=137722 std=896

Average inference timings in us: Warmup: 146161, Init: 4452, no stats: 137722
"""

LOGCAT = "... tflite  : Average inference timings in us: Warmup: 91471, Init: 4108, Inference: 80660.1\n"


def test_newer_format_prefers_the_median_of_timed_runs():
    stats = parse_benchmark_model(NEW)
    assert stats.count == 50 and stats.median_us == 1239807 and stats.latency_us == 1239807
    assert stats.avg_us == pytest.approx(1.24027e6) and stats.std_us == 2565 and stats.init_us == 5579


def test_older_format_uses_the_average():
    stats = parse_benchmark_model(OLD)
    assert stats.count == 50 and stats.median_us is None
    assert stats.latency_us == stats.avg_us == 137722 and stats.init_us == 4452


def test_summary_line_alone():
    stats = parse_benchmark_model(LOGCAT)
    assert stats.latency_us == pytest.approx(80660.1) and stats.count is None and stats.init_us == 4108


def test_no_timings_is_a_clear_error():
    with pytest.raises(DeviceError, match="phone: op.tflite: no inference timings.*Failed to load model"):
        parse_benchmark_model("ERROR: Failed to load model\n", source="phone: op.tflite")
