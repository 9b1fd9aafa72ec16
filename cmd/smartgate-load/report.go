package main

import (
	"fmt"
	"maps"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// numCPUs counts the machine's CPUs from /proc/cpuinfo; runtime.NumCPU
// counts only those this pinned process may use.
func numCPUs() int {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.NumCPU()
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "processor") {
			n++
		}
	}
	return n
}

func goVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		return info.GoVersion
	}
	return runtime.Version()
}

func printRun(runIndex int, r *result) {
	label := fmt.Sprintf("run %d", runIndex)
	if runIndex == 0 {
		label = "profiled run"
	}
	redis := "-"
	if r.hasRedis {
		redis = fmt.Sprintf("%.0f µs", r.perGrant(r.redisCPU))
	}
	fmt.Printf("%s: %-30s %-20s %8.0f/s  p50 %6.2f ms  p99 %6.2f ms  server CPU %6.0f µs  Redis CPU %6s  statuses %s\n",
		label, r.scenario, r.system, r.perSecond(), ms(r.percentile(0.50)), ms(r.percentile(0.99)),
		r.perGrant(r.serverCPU), redis, formatStatuses(r.statuses))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func formatStatuses(s map[int]int) string {
	codes := slices.Sorted(maps.Keys(s))
	parts := make([]string, len(codes))
	for i, c := range codes {
		name := fmt.Sprint(c)
		if c < 0 {
			name = "error"
		}
		parts[i] = fmt.Sprintf("%s:%d", name, s[c])
	}
	return strings.Join(parts, " ")
}

// summary is the median of the runs of one scenario on one system.
type summary struct {
	system, scenario           string
	perSecond                  float64
	p50, p99, max              time.Duration
	serverUS, redisUS, totalUS float64
	hasRedis                   bool
	rss                        int64
	roundTrips                 float64
	calls                      string
	statuses                   map[int]int
	runs                       int
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func summarize(results []*result) []*summary {
	groups := map[[2]string][]*result{}
	var order [][2]string
	for _, r := range results {
		k := [2]string{r.scenario, r.system}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []*summary
	for _, k := range order {
		rs := groups[k]
		pick := func(f func(*result) float64) float64 {
			xs := make([]float64, len(rs))
			for i, r := range rs {
				xs[i] = f(r)
			}
			return median(xs)
		}
		s := &summary{scenario: k[0], system: k[1], runs: len(rs), statuses: map[int]int{}, hasRedis: rs[0].hasRedis}
		s.perSecond = pick((*result).perSecond)
		s.p50 = time.Duration(pick(func(r *result) float64 { return float64(r.percentile(0.50)) }))
		s.p99 = time.Duration(pick(func(r *result) float64 { return float64(r.percentile(0.99)) }))
		s.max = time.Duration(pick(func(r *result) float64 { return float64(r.percentile(1)) }))
		s.serverUS = pick(func(r *result) float64 { return r.perGrant(r.serverCPU) })
		s.redisUS = pick(func(r *result) float64 { return r.perGrant(r.redisCPU) })
		s.totalUS = pick(func(r *result) float64 { return r.perGrant(r.serverCPU + r.redisCPU) })
		s.rss = int64(pick(func(r *result) float64 { return float64(r.rss) }))
		s.roundTrips = pick((*result).roundTrips)
		s.calls = callsPerGrant(rs[len(rs)-1])
		for _, r := range rs {
			for c, n := range r.statuses {
				s.statuses[c] += n
			}
		}
		out = append(out, s)
	}
	return out
}

// callsPerGrant lists Redis commands per successful grant of one run.
func callsPerGrant(r *result) string {
	if len(r.redisCalls) == 0 || r.ok == 0 {
		return "-"
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(r.redisCalls)) {
		parts = append(parts, fmt.Sprintf("%s %.2f", name, float64(r.redisCalls[name])/float64(r.ok)))
	}
	return strings.Join(parts, ", ")
}

func printTable(results []*result, perFamily float64, families int, p384Verify time.Duration) {
	sums := summarize(results)
	fmt.Println()
	fmt.Println("Medians. CPU is µs per successful grant from /proc/PID/stat; \"per core\" is 1e6 / (server + Redis CPU µs); " +
		"\"Redis round trips\" counts commands sent alone and pipelines per grant, from a go-redis hook in the gateway, " +
		"and is below 1 when concurrent grants share pipelines; \"-\" means the system keeps its state in process.")
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\tsystem\tHTTP 200/s\tp50 ms\tp99 ms\tmax ms\tserver CPU µs\tRedis CPU µs\ttotal µs\tper core/s\tRSS MiB\tRedis round trips\tstatuses (all runs)\t")
	for _, s := range sums {
		perCore := 0.0
		if s.totalUS > 0 {
			perCore = 1e6 / s.totalUS
		}
		roundTrips, redis := "-", "-"
		if s.roundTrips >= 0 {
			roundTrips = fmt.Sprintf("%.2f", s.roundTrips)
		}
		if s.hasRedis {
			redis = fmt.Sprintf("%.0f", s.redisUS)
		}
		fmt.Fprintf(w, "%s\t%s\t%.0f\t%.2f\t%.2f\t%.1f\t%.0f\t%s\t%.0f\t%.0f\t%.1f\t%s\t%s\t\n",
			s.scenario, s.system, s.perSecond, ms(s.p50), ms(s.p99), ms(s.max), s.serverUS, redis, s.totalUS,
			perCore, float64(s.rss)/(1<<20), roundTrips, formatStatuses(s.statuses))
	}
	w.Flush()

	fmt.Println()
	fmt.Println("Commands Redis ran per grant, those inside scripts included (INFO commandstats, last run):")
	for _, s := range sums {
		if s.calls != "-" {
			fmt.Printf("  %-30s %s\n", s.scenario, s.calls)
		}
	}
	fmt.Printf("\nRedis memory per refresh family: %.0f bytes (used_memory growth over %d seeded families)\n", perFamily, families)
	for _, s := range sums {
		if s.scenario == scenarioES384 && s.system == "smartgate" && p384Verify > 0 {
			fmt.Printf("client_credentials ES384: %.0f µs of server and Redis CPU per grant, %.2f times one P-384 "+
				"verification of a client assertion (%.0f µs with go-jose on the load CPU)\n",
				s.totalUS, s.totalUS/float64(p384Verify.Microseconds()), float64(p384Verify.Microseconds()))
		}
	}

	bySystem := map[[2]string]*summary{}
	for _, s := range sums {
		bySystem[[2]string{s.scenario, s.system}] = s
	}
	headed := false
	for _, s := range sums {
		if s.system == "smartgate" || s.system == "calibration server" {
			continue
		}
		g := bySystem[[2]string{s.scenario, "smartgate"}]
		if g == nil || s.perSecond == 0 || g.totalUS == 0 {
			continue
		}
		if !headed {
			fmt.Println("\nRatios, smartgate against each peer (throughput ratio; CPU ratio = peer CPU per grant / smartgate server+Redis CPU per grant):")
			headed = true
		}
		fmt.Printf("  %-30s vs %-14s throughput %.1fx, CPU %.1fx\n", s.scenario, s.system, g.perSecond/s.perSecond,
			s.totalUS/g.totalUS)
	}
}
