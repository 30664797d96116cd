/* SPDX-License-Identifier: MIT */
/*
 * cases.h — every test case, one line each: CASE(name, timeout_ms, flags).
 *
 * `weft-test list` prints this list; pytest runs each case in its own
 * process on every target with timeout_ms (times WEFT_TEST_TIMEOUT_MULT on
 * emulated targets). A case is `void t_NAME(void)` in one of the t_*.c files.
 * Flags (check.h): F_SCALED counts may be divided by up to 10 under qemu and
 * Wine (WEFT_TEST_SCALE); F_STRESS only in `make stress`.
 *
 * Bench scenarios: BENCH(name, summary), `void b_NAME(void)`.
 */

/* ---- harness self-checks (t_harness.c) ---- */
CASE(harness_pass, 5000, F_NONE)

/* ---- HAL (t_hal.c; the Windows variants of the cases written for POSIX,
 * and the port's own, in t_hal_win32.c) ---- */
CASE(hal_ctx_regs, 20000, F_NONE)
CASE(hal_ctx_entry, 10000, F_NONE)
CASE(hal_ctx_return, 10000, F_NONE)
CASE(hal_ctx_migrate, 10000, F_NONE)
CASE(hal_futex_wake, 10000, F_NONE)
CASE(hal_futex_timeout, 10000, F_NONE)
CASE(hal_time, 10000, F_NONE)
CASE(hal_threads, 10000, F_NONE)
CASE(hal_cpu_count, 5000, F_NONE)
CASE(hal_mem_basic, 10000, F_NONE)
CASE(hal_mem_guard_kinds, 10000, F_NONE)
CASE(hal_mem_guard_budget, 10000, F_NONE)
CASE(hal_mem_guard_maps, 10000, F_NONE)
CASE(hal_fault_chain, 10000, F_NONE)
CASE(hal_stack_overflow, 10000, F_NONE)
CASE(hal_write_err, 10000, F_NONE)
/* F_WINONLY: a frame-based exception handler inside a task (t_hal_win32.c). */
CASE(hal_seh_task, 10000, F_WINONLY)

/* ---- core: runtime and tasks (t_sched.c) ---- */
CASE(sched_basic, 10000, F_NONE)
CASE(sched_spawn_1m, 120000, F_SCALED)
/* sched_park_1m, stack_many and timer_many keep at most 10k stacks alive
 * on Windows (t_live_stacks: Wine's mappings and the host's map limit). */
CASE(sched_park_1m, 180000, F_SCALED)
CASE(sched_chain, 60000, F_NONE)
CASE(sched_yield, 60000, F_SCALED)
CASE(sched_many, 60000, F_SCALED)
CASE(sched_cycles, 60000, F_NONE)
CASE(sched_deadlock, 30000, F_NONE)
CASE(sched_errors, 30000, F_NONE)
CASE(sched_task_cache, 30000, F_NONE)
CASE(sched_locked_sleep, 30000, F_NONE)
CASE(sched_stats_startup, 30000, F_NONE)
CASE(sched_dump_ages, 30000, F_NONE)
CASE(sched_trace, 30000, F_NONE)

/* ---- the dump (t_dump.c): a task waiting in each way; what they print is
 * checked by tests/test_dump.py (and dump_sigquit_default's end by
 * test_crash.py). The SIGQUIT ones are POSIX's (F_NOWINE), Ctrl-Break is
 * Windows' (F_WINONLY). ---- */
CASE(dump_waits, 30000, F_NONE)
CASE(dump_sigquit, 30000, F_NOWINE)
CASE(dump_sigquit_ignored, 30000, F_NOWINE)
CASE(dump_sigquit_default, 30000, F_CRASH | F_NOWINE)
CASE(dump_ctrl_break, 30000, F_WINONLY)

/* ---- misuse (t_misuse.c): each rule broken gives its documented code, or
 * a message, the dump and an abort (F_CRASH: tests/test_crash.py). ---- */
CASE(misuse_block_call, 30000, F_CRASH)
CASE(misuse_block_select, 30000, F_CRASH)
CASE(misuse_chan_freed, 30000, F_CRASH)
CASE(misuse_timer_freed, 30000, F_CRASH)
CASE(misuse_block_allowed, 30000, F_NONE)
CASE(misuse_env, 30000, F_NONE)
CASE(misuse_sync_garbage, 30000, F_NONE)
CASE(misuse_api, 60000, F_NONE)
CASE(crash_stack_overflow, 30000, F_CRASH)

/* ---- memory and stacks (t_mem.c) ----
 * On Windows, stack_guard and stack_unguarded run their children as
 * weft-test.exe started again (t_child_start: no fork there). Skipped
 * there, and why: mem_debug (DEBUG=1 builds only, which `make test` does
 * not build for Windows; its children still use fork) and stack_discard
 * (it reads the resident set from /proc/self/statm, which a Windows
 * process does not have; not yet written with the process's working set). */
CASE(mem_classes, 60000, F_SCALED)
CASE(mem_zalloc, 10000, F_NONE)
CASE(mem_large, 60000, F_SCALED)
CASE(mem_reuse, 60000, F_SCALED)
CASE(mem_fini_releases, 30000, F_NONE)
CASE(mem_debug, 10000, F_NONE)
CASE(mem_tasks, 120000, F_SCALED)
CASE(stack_basic, 10000, F_NONE)
CASE(stack_guard, 30000, F_NONE)
CASE(stack_unguarded, 10000, F_NONE)
CASE(stack_many, 120000, F_SCALED)
CASE(stack_discard, 30000, F_NONE)

/* ---- kern's internals, white box (t_kern.c) ---- */
CASE(kern_runq_wrap, 10000, F_NONE)
CASE(kern_runq_steal, 60000, F_SCALED)
CASE(kern_runq_runnext, 10000, F_NONE)
CASE(kern_timerheap_order, 30000, F_SCALED)
CASE(kern_timerheap_delete, 30000, F_SCALED)
CASE(kern_timerheap_modify, 60000, F_SCALED)
CASE(kern_alloc_classes, 30000, F_NONE)
CASE(kern_stack_cache, 10000, F_NONE)
CASE(crash_panic_dump, 30000, F_CRASH)

/* ---- synchronisation (t_sync.c) ---- */
CASE(sync_mutex, 60000, F_SCALED)
CASE(sync_mutex_starvation, 60000, F_NONE)
CASE(sync_rwmutex, 60000, F_SCALED)
CASE(sync_cond, 60000, F_SCALED)
CASE(sync_waitgroup, 60000, F_NONE)
CASE(sync_once, 60000, F_NONE)
CASE(sync_errors, 60000, F_NONE)

/* ---- channels and select (t_chan.c) ---- */
CASE(chan_buffered_order, 30000, F_NONE)
CASE(chan_unbuffered, 30000, F_NONE)
CASE(chan_close_wakes, 30000, F_NONE)
CASE(chan_closed_drain, 10000, F_NONE)
CASE(chan_nil, 10000, F_NONE)
CASE(chan_select_fair, 30000, F_NONE)
CASE(chan_select_same, 30000, F_NONE)
CASE(chan_select_block, 30000, F_NONE)
CASE(chan_elem_sizes, 30000, F_NONE)
CASE(chan_errors, 10000, F_NONE)
CASE(chan_select_close_free, 30000, F_NONE)
CASE(chan_stress_mpmc, 120000, F_SCALED)
CASE(chan_stress_select3, 120000, F_SCALED)
CASE(chan_sieve, 60000, F_NONE)
CASE(chan_select64, 120000, F_SCALED)
CASE(chan_model_seq, 30000, F_NONE)
CASE(chan_model_multi, 120000, F_SCALED)
CASE(chan_handoff_fair, 30000, F_NONE)

/* ---- timers and sleep (t_timer.c) ----
 * F_NOWINE: timer_mode_* force the Linux poller's timeout paths.
 * timer_busy runs on Windows too (preemption by suspension): its bound, half
 * a second times the target's slack, stays far above Wine's 0.1-0.7 ms per
 * suspension and ~1 ms wait granularity. */
CASE(timer_sleep, 60000, F_NONE)
CASE(timer_mode_timerfd, 60000, F_NOWINE)
CASE(timer_mode_pwait2, 60000, F_NOWINE)
CASE(timer_mode_unknown, 30000, F_NONE)
CASE(timer_many, 120000, F_SCALED)
CASE(timer_api, 30000, F_NONE)
CASE(timer_races, 60000, F_SCALED)
CASE(timer_busy, 60000, F_NONE)
CASE(timer_idle_cpu, 30000, F_NONE)
CASE(timer_deadlock, 30000, F_NONE)
CASE(timer_one_firer, 30000, F_NONE)
CASE(timer_huge, 60000, F_NONE)

/* ---- the Windows port's timeout paths (t_win32.c) ----
 * F_WINONLY: hal/win32/timer_hr.c's paths, forced by WEFT_POLLER_TIMER
 * (the Linux poller's are timer_mode_timerfd and timer_mode_pwait2). */
CASE(timer_mode_emulated, 60000, F_WINONLY)
CASE(timer_mode_fallback, 60000, F_WINONLY)
CASE(timer_mode_bad, 30000, F_WINONLY)

/* ---- the Windows port's preemption by suspension (t_win32.c) ----
 * F_WINONLY: hal/win32/preempt.c's rules and its exit lock. */
CASE(preempt_dll_loop, 30000, F_WINONLY)
CASE(preempt_exit_storm, 120000, F_WINONLY)
CASE(preempt_lasterror, 60000, F_WINONLY)

/* ---- the poller and sockets (t_net.c) ----
 * F_NOWINE: net_close_reuse needs the OS to give a closed descriptor's
 * number to the next socket at once (POSIX's lowest free number; Windows
 * handles are not handed out that way; net_close_race covers the same
 * close on Windows without the reuse). net_wait_fd_shared waits on a
 * descriptor weft does not own, which Windows refuses (WEFT_ENOTSUP,
 * checked by net_wait_fd there). */
CASE(net_echo, 120000, F_SCALED)
CASE(net_deadline, 30000, F_NONE)
CASE(net_close_wakes, 30000, F_NONE)
CASE(net_short_read, 60000, F_NONE)
CASE(net_dial_timeout, 30000, F_NONE)
CASE(net_udp_ipv6, 30000, F_NONE)
CASE(net_wait_fd, 30000, F_NONE)
CASE(net_wait_fd_level, 30000, F_NONE)
CASE(net_bad_input, 30000, F_NONE)
CASE(net_close_reuse, 30000, F_NOWINE)
CASE(net_close_race, 120000, F_SCALED)
CASE(net_wait_fd_shared, 30000, F_NOWINE)
CASE(net_wait_fd_deadline, 60000, F_NONE)
CASE(net_deadline_args, 30000, F_NONE)
/* F_WINONLY: the completion port's own mechanisms (t_win_net.c): skipping
 * packets of synchronous completions, cancels racing completions with
 * released operations poisoned, and the drain at the end of a run. */
CASE(iocp_skip_sync, 60000, F_WINONLY)
CASE(iocp_cancel_race, 300000, F_WINONLY | F_SCALED)
CASE(iocp_fini_drain, 60000, F_WINONLY)

/* ---- preemption and the monitor (t_preempt.c) ----
 * Windows runs these by suspending the thread (hal/win32/preempt.c); there
 * preempt_regs* use the Win64 probe (tests/regs_win64_x86_64.S) and the
 * port's test hook instead of a signal. F_NOWINE: written for signals
 * (POSIX): a host's own SIGURG handler or mask, a SIGURG from outside, a
 * program's signal handler; Windows has no signal to preempt with. */
CASE(preempt_sleeper, 30000, F_NONE)
CASE(preempt_share, 30000, F_NONE)
CASE(preempt_small_stack, 30000, F_NONE)
CASE(preempt_regs, 60000, F_NONE)
CASE(preempt_regs_long, 3600000, F_STRESS)
CASE(preempt_regs_negative, 30000, F_NONE)
CASE(preempt_libc, 60000, F_NONE)
CASE(preempt_nopreempt, 30000, F_NONE)
CASE(preempt_off_stress, 120000, F_NONE)
CASE(preempt_host_handler, 30000, F_NOWINE)
CASE(preempt_host_blocked, 30000, F_NOWINE)
CASE(preempt_stray_signal, 30000, F_NOWINE)
CASE(preempt_spawn_storm, 60000, F_NONE)
CASE(preempt_user_handler, 30000, F_NOWINE)

/* ---- blocking calls and locked threads (t_block.c) ---- */
CASE(block_handoff, 30000, F_NONE)
CASE(block_errno, 60000, F_NONE)
CASE(block_lock_thread, 60000, F_NONE)
CASE(block_not_deadlock, 30000, F_NONE)
CASE(block_locked_deadlock, 30000, F_NONE)
CASE(block_aba, 30000, F_NONE)
CASE(block_abandon, 30000, F_NONE)
CASE(block_abandon_host, 30000, F_NONE)
/* F_NOWINE: Windows preempts by suspending a thread, which makes no wait
 * fail: there is no EINTR to avoid. */
CASE(block_no_eintr, 30000, F_NOWINE)
/* F_WINONLY: GetLastError travels with the task as errno does (t_win32.c). */
CASE(block_lasterror, 60000, F_WINONLY)

/* ---- blocking calls nobody annotated (t_autoblock.c) ---- */
CASE(block_auto_stall, 60000, F_NONE)
CASE(block_auto_spin, 60000, F_NONE)
CASE(block_auto_storm, 120000, F_SCALED)
CASE(block_auto_fallback, 30000, F_NONE)
CASE(block_auto_dump, 30000, F_NONE)
CASE(block_auto_park, 30000, F_NONE)

/* ---- embedding: weft_start/weft_stop, host threads (t_embed.c) ---- */
CASE(embed_spawn, 120000, F_SCALED)
CASE(embed_hosts_send, 120000, F_SCALED)
CASE(embed_start_stop, 120000, F_NONE)
CASE(embed_stop_race, 120000, F_SCALED)
CASE(embed_run_hosts, 30000, F_NONE)
CASE(embed_timers, 30000, F_NONE)
CASE(embed_select_fair, 60000, F_NONE)
CASE(embed_idle_cpu, 30000, F_NONE)
CASE(embed_plugin, 60000, F_NONE)

/* ---- bench scenarios (bench_*.c) ---- */
BENCH(spawn, "n tasks (1M) started and finished: ns per task")
BENCH(yield, "two tasks yielding n (5M) times each: ns per switch")
BENCH(pingpong, "unbuffered round trip, every reply checked: ns per round trip (n 1M, procs 1)")
BENCH(buffered, "cap-128 channel, 1 producer 1 consumer: ns per item (n 10M, procs 2)")
BENCH(select, "4 producers into one 4-way select: ns per message (n 1M, procs 2)")
BENCH(park_memory, "RSS per task while n (100k) tasks block on one channel receive: bytes per task")
BENCH(mutex, "4 tasks contending on one mutex, n (10M) lock+unlock pairs: ns per pair (procs 2)")
BENCH(workers, "8 workers draining a pre-filled channel of n (1M) ~195 ns jobs: jobs per second")
BENCH(sleep, "sleep dur_us n times: overshoot p50/p99")
BENCH(timers, "n tasks sleeping random 0-1 s: max lateness")
BENCH(echo, "TCP loopback echo, 64 B: round trips/s, latency p50/p99")
BENCH(preempt, "1 ms sleeper (nanosleep in weft_block_begin/end) next to a tight loop, procs 1: "
               "lateness p50 and max (n 50)")
BENCH(
    syscall,
    "500 ms raw read of a pipe in weft_block_begin/end, procs 1: longest stall of a counting task")
BENCH(autoblock,
      "500 ms raw read of a pipe, not annotated, procs 1: longest stall of a counting task")
