"""The benchmark's GPU columns appear only where a GPU contestant ran, with the ratios the
GPU check reads (cupy / PyTorch on CUDA, Numba / cupy)."""

from benchmarks import gpu


def timing(ms: float) -> dict:
    return {"median": ms / 1e3, "min": ms / 1e3}


def test_no_gpu_rows_no_gpu_tables():
    cpu_only = {"ops": [{"op": "conv", "numba fwd": timing(2.0), "numba fwd+bwd": timing(5.0)}],
                "training": [{"model": "resnet20", "batch": 128, "numba": timing(900.0)}]}
    assert gpu.markdown(cpu_only) == []


def test_gpu_tables_and_ratios():
    op = {"op": "resnet 3x3 16ch 32x32 b128", "numba fwd": timing(20.0), "numba fwd+bwd": timing(60.0),
          "cupy fwd": timing(0.5), "cupy fwd+bwd": timing(1.5), "torch-cuda fwd": timing(0.25),
          "torch-cuda fwd+bwd": timing(0.75)}
    step = {"model": "resnet20", "batch": 128, "numba": timing(900.0), "cupy": timing(30.0)}
    results = {"ops": [op], "training": [step]}
    lines = gpu.markdown(results)
    op_row = next(line for line in lines if line.startswith("| resnet 3x3"))
    assert op_row.endswith("| 0.500 | 0.250 | 1.500 | 0.750 | 2.00 | 40.00 |")
    step_row = next(line for line in lines if line.startswith("| resnet20 b128"))
    assert step_row == "| resnet20 b128 | 30.000 | - | - | 30.00 |"  # no CUDA PyTorch: no ratio to it


def test_goals_read_the_issue_targets_and_say_when_they_cannot_be_read(tmp_path):
    ops = [{"op": f"resnet 3x3 {c}ch b128", "kind": "conv", "cupy fwd+bwd": timing(ms),
            "torch-cuda fwd+bwd": timing(1.0)} for c, ms in ((16, 2.0), (32, 3.5))]
    step = {"model": "resnet20", "batch": 128, "numba": timing(900.0), "cupy": timing(30.0),
            "torch-cuda": timing(20.0)}
    (conv, to_torch, speedup) = gpu.goals({"ops": ops, "training": [step]})
    assert conv[1:] == ("3.50", False) and to_torch[1:] == ("1.50", True) and speedup[1:] == ("30.00", True)
    assert all(met is None for _, _, met in gpu.goals({"ops": [], "training": []}))
    junit = tmp_path / "tests.xml"
    junit.write_text('<testsuites><testsuite><testcase classname="a" name="ok"/>'
                     '<testcase classname="a" name="bad"><failure/></testcase>'
                     '<testcase classname="b" name="gpu"><skipped/></testcase></testsuite></testsuites>')
    counts = gpu.junit_counts(str(junit))
    assert (counts["passed"], counts["failed"], counts["skipped"]) == (1, 1, 1)
    assert counts["failures"] == ["a::bad"]
    report = gpu.summary({"machine": {"gpu": "H200"}, "ops": ops, "training": [step]}, counts)
    assert "- gpu: H200" in report and "1 passed, 1 failed, 0 errors, 1 skipped" in report
    assert "| NO |" in report
