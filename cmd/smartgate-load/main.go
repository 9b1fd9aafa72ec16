// Command smartgate-load measures smartgate's token endpoint on this
// machine and, in the same run, the peers oidc-provider and Ory Hydra.
//
// It starts its own redis-server, a stand-in identity provider and
// smartgate on free loopback ports, with the servers and Redis pinned to
// CPU 1 and the load generator pinned to CPU 0 when taskset is available.
// Every scenario has a fixed request count, a warm-up and a time cap.
// Systems are interleaved run by run, and the table shows medians.
//
//	go run ./cmd/smartgate-load [-runs 3] [-requests 20000] [-peers oidc-provider,hydra]
//	go run ./cmd/smartgate-load -soak 5m -soak-rate 4000
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/store"
)

// Environment variables by which the tool runs its own child processes.
const (
	roleEnv   = "SMARTGATE_LOAD_ROLE"
	pinnedEnv = "SMARTGATE_LOAD_PINNED"
)

func main() {
	switch os.Getenv(roleEnv) {
	case "gateway":
		exitOn(serveGateway(os.Args[1], os.Args[2], os.Args[3], os.Args[4]))
		return
	case "stub":
		exitOn(serveStub(os.Args[1]))
		return
	}
	if canPin() && os.Getenv(pinnedEnv) == "" {
		exitOn(repin())
		return
	}
	opts := options{}
	flag.IntVar(&opts.runs, "runs", 3, "measured runs of every scenario on every system; the table shows medians")
	flag.IntVar(&opts.requests, "requests", 20000, "requests per measured run of the c=16 refresh, introspection and code scenarios; "+
		"client_credentials RS384 uses half, ES384 and refresh c=1 a tenth, calibration twice")
	flag.IntVar(&opts.warmup, "warmup", 500, "unmeasured requests before each measured run")
	flag.DurationVar(&opts.timeCap, "cap", 30*time.Second, "time cap of each measured run")
	flag.StringVar(&opts.peers, "peers", "", "comma-separated peers to measure as well: oidc-provider, hydra")
	flag.StringVar(&opts.cacheDir, "cache", defaultCacheDir(), "folder outside the repository where peers are installed")
	flag.StringVar(&opts.profile, "cpuprofile", "", "after the measured runs, write a CPU profile of smartgate during one more run of -profile-scenario to this file")
	flag.StringVar(&opts.profileScenario, "profile-scenario", scenarioRefresh16, "the scenario that -cpuprofile profiles")
	flag.IntVar(&opts.families, "families", 10000, "refresh families seeded to measure Redis memory per family")
	var soak soakOptions
	flag.DurationVar(&soak.duration, "soak", 0, "instead of the benchmark, run a soak of this length: refreshes at -soak-rate, "+
		"a row of throughput, errors, latency, memory and goroutines every -soak-interval")
	flag.IntVar(&soak.rate, "soak-rate", 4000, "requests per second of the soak (about 70% of the measured maximum)")
	flag.DurationVar(&soak.interval, "soak-interval", 10*time.Second, "time between rows of the soak report")
	flag.IntVar(&soak.workers, "soak-workers", 32, "concurrent clients of the soak, each rotating its own refresh token")
	flag.Parse()
	if flag.NArg() > 0 {
		exitOn(fmt.Errorf("unexpected argument %q: the tool takes flags only (see -help)", flag.Arg(0)))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if soak.duration > 0 {
		exitOn(soak.validate())
		exitOn(runSoak(ctx, soak))
		return
	}
	profileScenarioSet := false
	flag.Visit(func(f *flag.Flag) { profileScenarioSet = profileScenarioSet || f.Name == "profile-scenario" })
	exitOn(opts.validate(profileScenarioSet))
	exitOn(run(ctx, opts))
}

// validate checks the flags before anything starts, so that a mistake
// does not surface only after a long run.
func (o options) validate(profileScenarioSet bool) error {
	switch {
	case o.runs < 1:
		return fmt.Errorf("-runs %d: need at least 1", o.runs)
	case o.requests < 1:
		return fmt.Errorf("-requests %d: need at least 1", o.requests)
	case o.warmup < 0:
		return fmt.Errorf("-warmup %d: need 0 or more", o.warmup)
	case o.families < 1:
		return fmt.Errorf("-families %d: need at least 1", o.families)
	case o.timeCap <= 0:
		return fmt.Errorf("-cap %s: need a positive duration", o.timeCap)
	case profileScenarioSet && o.profile == "":
		return errors.New("-profile-scenario needs -cpuprofile FILE")
	}
	if !slices.Contains(scenarioOrder[1:], o.profileScenario) {
		return fmt.Errorf("-profile-scenario %q: unknown scenario; use one of (quoted, since the names contain spaces): %s",
			o.profileScenario, strings.Join(scenarioOrder[1:], ", "))
	}
	_, err := peerNames(o.peers)
	return err
}

type options struct {
	runs, requests, warmup, families int
	timeCap                          time.Duration
	peers, cacheDir, profile         string
	profileScenario                  string
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "smartgate-load:", err)
		os.Exit(1)
	}
}

// repin runs the tool again on the load core, so that the load generator
// does not compete with the servers under test.
func repin() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command("taskset", append([]string{"-c", loadCore, exe}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), pinnedEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	signal.Ignore(os.Interrupt, syscall.SIGTERM) // the child gets them from the terminal and stops its servers
	err = cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		os.Exit(exit.ExitCode())
	}
	return err
}

func defaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "smartgate-peers")
	}
	return filepath.Join(dir, "smartgate", "peers")
}

func run(ctx context.Context, opts options) error {
	dir, err := os.MkdirTemp("", "smartgate-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	printMachine(opts)

	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()

	sg, stubURL, stub, err := startSmartgate(ctx, dir, &cleanups)
	if err != nil {
		return err
	}
	sizes := map[string]int{
		scenarioRefresh16: opts.requests, scenarioRefresh1: max(opts.requests/10, 1),
		scenarioRS384: max(opts.requests/2, 1), scenarioES384: max(opts.requests/10, 1),
		scenarioCode16: opts.requests, scenarioIntrospect: opts.requests, scenarioCalibration: 2 * opts.requests,
	}
	type entry struct {
		sys       system
		scenarios []scenario
	}
	sgSystem := system{name: "smartgate", serverPID: sg.proc.pid(), redisPID: sg.redis.pid(), rdb: sg.rdb,
		roundTripsURL: sg.controlURL}
	entries := []entry{{sys: sgSystem, scenarios: smartgateScenarios(sg, sizes, opts.warmup, opts.timeCap)}}
	entries = append(entries, entry{sys: system{name: "calibration server", serverPID: stub.pid()},
		scenarios: []scenario{calibrationScenario(stubURL, sizes[scenarioCalibration], opts.warmup, opts.timeCap)}})

	peers, err := startPeers(ctx, opts, dir, peerKeys{rs384: sg.rs384, es384: sg.es384}, &cleanups)
	if err != nil {
		return err
	}
	for _, p := range peers {
		fmt.Printf("peer %s: %s\n", p.sys.name, p.description)
		entries = append(entries, entry{sys: p.sys, scenarios: p.scenarios(sizes, opts.warmup, opts.timeCap)})
	}

	var results []*result
	invalid := false
	for runIndex := 1; runIndex <= opts.runs; runIndex++ {
		// Scenario by scenario, every system in turn, so that drift of
		// the machine spreads over all systems.
		for _, id := range scenarioOrder {
			for _, e := range entries {
				for _, sc := range e.scenarios {
					if sc.id != id {
						continue
					}
					if err := ctx.Err(); err != nil {
						return err
					}
					res, err := measure(ctx, e.sys, sc)
					if err != nil {
						return err
					}
					results = append(results, res)
					printRun(runIndex, res)
					if sc.strict && (res.ok != res.sent || res.timedOut) {
						invalid = true
						fmt.Printf("  INVALID: %s on %s: %d of %d requests returned 200 (timed out: %v); first failure: %s\n",
							sc.id, e.sys.name, res.ok, res.sent, res.timedOut, res.firstError)
					}
				}
			}
		}
	}

	perFamily, err := sg.familyMemory(ctx, opts.families)
	if err != nil {
		return fmt.Errorf("measure Redis memory per family: %w", err)
	}
	p384Verify, err := p384VerifyCost(sg.es384)
	if err != nil {
		return fmt.Errorf("measure one P-384 verification: %w", err)
	}
	printTable(results, perFamily, opts.families, p384Verify)

	if opts.profile != "" {
		i := slices.IndexFunc(entries[0].scenarios, func(sc scenario) bool { return sc.id == opts.profileScenario })
		if err := profileScenario(ctx, sg, entries[0].scenarios[i], opts.profile); err != nil {
			return err
		}
	}
	if invalid {
		return errors.New("at least one smartgate run had a non-200 response or hit its time cap; its figures are not valid")
	}
	return nil
}

// scenarioOrder is the order of scenarios within one run.
var scenarioOrder = []string{scenarioCalibration, scenarioRefresh16, scenarioRefresh1, scenarioRS384, scenarioES384,
	scenarioCode16, scenarioIntrospect}

// startSmartgate starts Redis, the stand-in identity provider and smartgate.
func startSmartgate(ctx context.Context, dir string, cleanups *[]func()) (*smartgateTarget, string, *process, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", nil, err
	}
	redisProc, rdb, err := startRedis(dir)
	if err != nil {
		return nil, "", nil, err
	}
	*cleanups = append(*cleanups, func() { rdb.Close(); redisProc.stop() })

	stubAddr, err := freeAddr()
	if err != nil {
		return nil, "", nil, err
	}
	stub, err := startProcess("stand-in identity provider", serverCore, filepath.Join(dir, "stub.log"),
		[]string{roleEnv + "=stub"}, exe, stubAddr)
	if err != nil {
		return nil, "", nil, err
	}
	*cleanups = append(*cleanups, stub.stop)
	stubURL := "http://" + stubAddr
	if err := waitHTTP(stub, stubURL+"/calibrate"); err != nil {
		return nil, "", nil, err
	}

	rsKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, "", nil, err
	}
	esKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, "", nil, err
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, "", nil, err
	}
	cfgPath, err := writeSmartgateConfig(dir, listen, stubURL, rdb.Options().Addr, rsKey, esKey)
	if err != nil {
		return nil, "", nil, err
	}
	controlAddr, err := freeAddr()
	if err != nil {
		return nil, "", nil, err
	}
	profilePath := filepath.Join(dir, "smartgate.pprof")
	gw, err := startProcess("smartgate", serverCore, filepath.Join(dir, "smartgate.stderr"),
		[]string{roleEnv + "=gateway"}, exe, cfgPath, filepath.Join(dir, "smartgate.log"), profilePath, controlAddr)
	if err != nil {
		return nil, "", nil, err
	}
	*cleanups = append(*cleanups, gw.stop)
	url := "http://" + listen
	if err := waitHTTP(gw, url+"/.well-known/smart-configuration"); err != nil {
		stderr, _ := os.ReadFile(filepath.Join(dir, "smartgate.stderr"))
		return nil, "", nil, fmt.Errorf("%w\n%s", err, stderr)
	}
	fmt.Printf("system smartgate: %s\n", describeSmartgate())
	return &smartgateTarget{url: url, proc: gw, redis: redisProc, rdb: rdb, store: store.New(rdb, config.DefaultKeyPrefix),
		rs384: rsKey, es384: esKey, profile: profilePath, controlURL: "http://" + controlAddr}, stubURL, stub, nil
}

// profileScenario runs a scenario once more with smartgate's CPU profile
// on and copies the profile to path.
func profileScenario(ctx context.Context, sg *smartgateTarget, sc scenario, path string) error {
	sys := system{name: "smartgate (profiled)", serverPID: sg.proc.pid(), redisPID: sg.redis.pid(), rdb: sg.rdb,
		roundTripsURL: sg.controlURL}
	sg.proc.cmd.Process.Signal(syscall.SIGUSR1)
	res, err := measure(ctx, sys, sc)
	sg.proc.cmd.Process.Signal(syscall.SIGUSR2)
	if err != nil {
		return err
	}
	printRun(0, res)
	time.Sleep(500 * time.Millisecond) // the profile is written when the signal is handled
	data, err := os.ReadFile(sg.profile)
	if err != nil {
		return fmt.Errorf("read CPU profile: %w", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	fmt.Printf("CPU profile of smartgate during %s: %s (go tool pprof -top %s)\n", sc.id, path, path)
	return nil
}

func printMachine(opts options) {
	model := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Printf("machine: %d CPUs, %s, kernel %s, %s\n", numCPUs(), model, strings.TrimSpace(string(kernel)), goVersion())
	if pinned() {
		fmt.Printf("pinning: servers and Redis on CPU %s, load generator on CPU %s (taskset)\n", serverCore, loadCore)
	} else {
		fmt.Println("pinning: none (taskset missing or a single CPU); figures are not per core")
	}
	fmt.Printf("runs: %d per scenario and system, interleaved; %d warm-up requests; cap %s per run\n\n",
		opts.runs, opts.warmup, opts.timeCap)
}
