"""Participant level: preprocess every selected session, then (with --model) predict.

Subjects run in parallel (``--nprocs``); the sessions of one subject run in order in one worker,
so an MRI session shared by several PET sessions is processed once. A failing session does not
stop the others: its error is logged with the file it names, and the exit code of the first
failure is returned after a summary.
"""
from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from bids_amyloid import __version__
from bids_amyloid.bids.records import Session
from bids_amyloid.bids.derivatives import Derivatives
from bids_amyloid.config import Config
from bids_amyloid.errors import BidsAmyloidError, UsageError

log = logging.getLogger("bids_amyloid.participant")

GIB_PER_PROCESS = 3.0
"""Peak RSS of one preprocessing process on a 1 mm session (measured 1.3 GiB), with headroom."""
GIB_PER_PROCESS_WITH_MODEL = 6.0
"""Preprocessing + ViT-B/16 fold-ensemble inference with saliency (measured 5.8 GiB)."""


@dataclass
class SessionResult:
    key: str
    ok: bool
    exit_code: int = 0
    message: str = ""


def plan_processes(config: Config) -> int:
    """Parallel processes that fit ``--mem`` (refuse when even one does not)."""
    nprocs = config.nprocs
    if config.mem_gb is None:
        return nprocs
    need = GIB_PER_PROCESS if config.model_path is None else GIB_PER_PROCESS_WITH_MODEL
    fitting = int(config.mem_gb // need)
    if fitting < 1:
        raise UsageError(f"--mem {config.mem_gb:g} GiB is below the {need:g} GiB one participant process needs")
    if fitting < nprocs:
        log.warning("--mem %.3g GiB fits %d process(es), not --nprocs %d: using %d", config.mem_gb, fitting, nprocs, fitting)
    return min(nprocs, fitting)


def set_thread_limits(threads: int, seed: int) -> None:
    """Before any ANTs/torch import: thread counts and the ANTs seed (antspyx ignores random_seed=)."""
    for var in ("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["ANTS_RANDOM_SEED"] = str(seed)


def process_subject(sessions: list[Session], config: Config) -> list[SessionResult]:
    """Preprocess (and predict) the sessions of one subject; runs in a worker process.

    One subject at a time per output folder (a lock), so the leftovers of a killed run can be
    removed safely even when array jobs share the folder.
    """
    from bids_amyloid.bids.io import locked, remove_stale_temporaries

    subject, layout = sessions[0].subject, Derivatives(config.output_dir)
    with locked(layout.subject_dir(subject), timeout=24 * 3600):
        remove_stale_temporaries(layout.subject_dir(subject))
        remove_stale_temporaries(layout.root, layout.participant_report(subject).name, recursive=False)
        return _process_sessions(sessions, config)


def _process_sessions(sessions: list[Session], config: Config) -> list[SessionResult]:
    set_thread_limits(config.omp_nthreads, config.seed)
    from bids_amyloid.preprocess.session import preprocess_session

    results = []
    for session in sessions:
        start = time.perf_counter()
        try:
            preprocessed = preprocess_session(session, config)
            if config.model_path is not None:
                from bids_amyloid.infer.predict import predict_session

                predict_session(session, preprocessed, config)
            results.append(SessionResult(session.key, True))
            log.info("%s done in %.1f s; stages computed: %s; reused: %s", session.key, time.perf_counter() - start,
                     ", ".join(preprocessed.computed) or "none", ", ".join(preprocessed.reused) or "none")
        except BidsAmyloidError as exc:
            log.error("%s failed: %s", session.key, exc, exc_info=bool(config.verbose))
            results.append(SessionResult(session.key, False, exc.exit_code, str(exc)))
        except Exception as exc:  # one broken session must not stop the others
            log.error("%s failed unexpectedly: %s: %s", session.key, type(exc).__name__, exc,
                      exc_info=bool(config.verbose))
            results.append(SessionResult(session.key, False, 1, f"{type(exc).__name__}: {exc}"))
    if any(r.ok for r in results):
        _write_report(sessions[0].subject, config)
    return results


def _write_report(subject: str, config: Config) -> None:
    """The participant's HTML page (reads only files in OUTPUT_DIR); a figure bug is not fatal."""
    from bids_amyloid.report.participant import write_participant_report

    try:
        write_participant_report(subject, config)
    except Exception as exc:
        log.error("sub-%s: the HTML report failed (%s: %s); the derivatives are complete",
                  subject, type(exc).__name__, exc, exc_info=bool(config.verbose))


def _init_worker(verbose: int) -> None:
    from bids_amyloid.logs import setup_logging

    setup_logging(verbose)


def run_participant(config: Config) -> int:
    from bids_amyloid.bids.dataset import init_output_dir, output_version, write_run_config
    from bids_amyloid.bids.layout import discover
    from bids_amyloid.bids.runsummary import write_run_summary

    config.validate()  # a Config built in code is checked like the command line's
    found = discover(config)
    sessions = found.sessions
    previous = output_version(config.output_dir)
    if previous and previous != __version__:
        log.warning("%s holds results of bids_amyloid %s; this is %s", config.output_dir, previous, __version__)
    init_output_dir(config.output_dir, config.bids_dir)
    layout = Derivatives(config.output_dir)
    write_run_config(config, layout.run_config(f"participant-{_run_tag(config)}"))
    if config.model_path is None:
        log.info("no --model given: preprocessing only (no predictions)")
    else:
        from bids_amyloid.infer.predict import check_model

        check_model(config)  # fail before hours of preprocessing if the bundle is unusable

    by_subject: dict[str, list[Session]] = defaultdict(list)
    for session in sessions:
        by_subject[session.subject].append(session)
    log.info("%d session(s) of %d subject(s) selected", len(sessions), len(by_subject))

    nprocs = min(plan_processes(config), len(by_subject))
    results: list[SessionResult] = []
    if nprocs == 1:
        for group in by_subject.values():
            results += process_subject(group, config)
    else:
        # spawn, not fork: the parent may hold torch/ITK thread pools that do not survive a fork
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(nprocs, mp_context=context, initializer=_init_worker, initargs=(config.verbose,)) as pool:
            futures = [pool.submit(process_subject, group, config) for group in by_subject.values()]
            for future in as_completed(futures):
                results += future.result()

    if config.model_path is not None:
        from bids_amyloid.infer.table import gather_predictions

        gather_predictions(config)
    failures = {r.key: f"exit {r.exit_code}: {r.message}" for r in results if not r.ok}
    write_run_summary(layout.run_summary(_run_tag(config)), found, config.bids_dir, failures, found.notes)
    return _summarise(results)


def _run_tag(config: Config) -> str:
    subjects = "-".join(config.participant_labels) if config.participant_labels else "all"
    return subjects if len(subjects) <= 40 else f"{len(config.participant_labels)}subjects"


def _summarise(results: list[SessionResult]) -> int:
    failed = [r for r in results if not r.ok]
    log.info("%d of %d session(s) succeeded", len(results) - len(failed), len(results))
    for r in failed:
        log.error("  %s: exit %d: %s", r.key, r.exit_code, r.message)
    return failed[0].exit_code if failed else 0
