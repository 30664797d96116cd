// SPDX-License-Identifier: MIT
// weft-bench-go: Go's side of weft's benchmarks (docs/benchmarks.md).
//
//	weft-bench-go list                      scenarios, one "name<TAB>summary" a line
//	weft-bench-go SCENARIO [key=value ...]  runs one, prints JSON lines
//
// Every scenario does the same work as weft's b_NAME (tests/bench_*.c),
// checks its own result (a count or a checksum) and prints one JSON line per
// metric in the format of t_bench_emit (tests/check.h) with "impl":"go":
//
//	{"scenario":"spawn","impl":"go","procs":1,"n":1000000,"metric":"ns_per_task",
//	 "value":912.000,"unit":"ns","better":"lower","check":1000000,"ok":true}
//
// procs=N sets GOMAXPROCS (0 or absent: Go's default, the CPU count). No
// dependencies beyond the standard library; one file per scenario group.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

type scenario struct {
	name, summary string
	run           func(p *params)
}

// In the order of tests/cases.h's bench block.
var scenarios = []scenario{
	{"spawn", "n tasks started and finished (ns per task)", benchSpawn},
	{"park_memory", "RSS per task parked on a channel receive", benchParkMemory},
	{"yield", "two tasks yielding n times each (ns per switch)", benchYield},
	{"pingpong", "unbuffered round trip, every reply checked", benchPingpong},
	{"buffered", "cap-128 channel, 1 producer 1 consumer (ns per item)", benchBuffered},
	{"select", "4 producers into one 4-way select (ns per message)", benchSelect},
	{"mutex", "4 tasks contending on one mutex (ns per lock+unlock)", benchMutex},
	{"sleep", "sleep dur_us n times: overshoot p50/p99", benchSleep},
	{"timers", "n tasks sleeping random 0-1 s: max lateness", benchTimers},
	{"preempt", "1 ms sleeper next to a tight loop: lateness", benchPreempt},
	{"syscall", "longest stall of a counting task during a raw 500 ms read", benchSyscall},
	{"autoblock", "syscall again: Go hands off a raw read itself", benchSyscall},
	{"echo", "TCP loopback echo, 64 B: round trips/s, latency p50/p99", benchEcho},
	{"workers", "8 workers draining n pre-queued jobs (jobs/s)", benchWorkers},
}

// params holds the key=value arguments; scenarios read them with int().
type params struct {
	name  string
	kv    map[string]string
	procs int
	used  map[string]bool
}

func (p *params) int(key string, dflt int64) int64 {
	p.used[key] = true
	s, ok := p.kv[key]
	if !ok {
		return dflt
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		fail("bad value for %s: %q", key, s)
	}
	return v
}

// procsDefault applies procs= (or dflt when absent; 0 = Go's default).
func (p *params) procsDefault(dflt int64) {
	if n := p.int("procs", dflt); n > 0 {
		runtime.GOMAXPROCS(int(n))
	}
	p.procs = runtime.GOMAXPROCS(0)
}

var cur *params

// emit prints one JSON line (the format of t_bench_emit).
func emit(n int64, metric string, value float64, unit, better string, check int64, ok bool) {
	fmt.Printf("{\"scenario\":%q,\"impl\":\"go\",\"procs\":%d,\"n\":%d,\"metric\":%q,"+
		"\"value\":%s,\"unit\":%q,\"better\":%q,\"check\":%d,\"ok\":%t}\n",
		cur.name, cur.procs, n, metric, strconv.FormatFloat(value, 'f', 3, 64),
		unit, better, check, ok)
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "weft-bench-go: "+format+"\n", a...)
	os.Exit(2)
}

// nsPer returns wall nanoseconds divided by count.
func nsPer(wall time.Duration, count int64) float64 {
	return float64(wall.Nanoseconds()) / float64(count)
}

// percentile of sorted-in-place samples (nearest rank), in the samples' unit.
func percentile(s []int64, q float64) int64 {
	if len(s) == 0 {
		return 0
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

func usOf(ns int64) float64 { return float64(ns) / 1e3 }
func msOf(ns int64) float64 { return float64(ns) / 1e6 }

func main() {
	if len(os.Args) < 2 {
		fail("usage: weft-bench-go list | SCENARIO [key=value ...]")
	}
	if os.Args[1] == "list" {
		for _, s := range scenarios {
			fmt.Printf("%s\t%s\n", s.name, s.summary)
		}
		return
	}
	p := &params{name: os.Args[1], kv: map[string]string{}, used: map[string]bool{}}
	for _, a := range os.Args[2:] {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			fail("argument %q is not key=value", a)
		}
		p.kv[k] = v
	}
	for _, s := range scenarios {
		if s.name == p.name {
			cur = p
			s.run(p)
			for k := range p.kv {
				if !p.used[k] {
					fail("%s: unknown parameter %q", p.name, k)
				}
			}
			return
		}
	}
	fail("unknown scenario %q (see: weft-bench-go list)", p.name)
}
