package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the name the Sentinels of StartRedisSentinel monitor
// the master under.
const SentinelMaster = "mymaster"

// redisProcess is one redis-server (a data node or a Sentinel) with its
// own folder, which holds its configuration file and its data.
type redisProcess struct {
	addr   string
	cmd    *exec.Cmd
	exited chan struct{}
	output *LockedBuffer
}

// stop ends the process by its PID: SIGINT first, SIGKILL after 5 s.
func (p *redisProcess) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// startRedisProcess writes the configuration that conf returns for a free
// port into a fresh folder, which becomes the working folder of the
// process, and starts redis-server on it, with args after the file name. It tries five ports, since another program can take a
// free port before redis-server binds it. The process is stopped and its
// folder removed when cleanup runs.
func startRedisProcess(t testing.TB, cleanup *Cleanup, conf func(port int) string, args ...string) *redisProcess {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("testenv: redis-server not found; install it (Debian: apt-get install -y redis-server)")
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := freePort(t)
		dir, err := os.MkdirTemp("", "smartgate-redis-")
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		file := filepath.Join(dir, "redis.conf")
		// Sentinels rewrite their configuration file, so it stays writable.
		text := conf(port) + fmt.Sprintf("dir %q\n", dir)
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatalf("testenv: write %s: %v", file, err)
		}
		p := &redisProcess{addr: fmt.Sprintf("127.0.0.1:%d", port), exited: make(chan struct{}),
			output: &LockedBuffer{}}
		p.cmd = exec.Command(bin, append([]string{file}, args...)...)
		p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
		if err := p.cmd.Start(); err != nil {
			os.RemoveAll(dir)
			t.Fatalf("testenv: start redis-server: %v", err)
		}
		go func() { _ = p.cmd.Wait(); close(p.exited) }()
		if lastErr = p.waitReady(); lastErr == nil {
			cleanup.Add(func() { p.stop(); os.RemoveAll(dir) })
			return p
		}
		p.stop()
		os.RemoveAll(dir)
	}
	t.Fatalf("testenv: redis-server did not come up: %v", lastErr)
	return nil
}

// waitReady waits up to 10 s for the process to reply to PING.
func (p *redisProcess) waitReady() error {
	c := redis.NewClient(&redis.Options{Addr: p.addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("redis-server exited: %w; its output:\n%s", err, p.output.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no reply to PING in 10 s: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dataNodeConf is the configuration of a Redis server that keeps its data
// in memory only.
func dataNodeConf(port int, extra ...string) string {
	lines := append([]string{
		"bind 127.0.0.1",
		"port " + strconv.Itoa(port),
		"protected-mode yes",
		`save ""`,
		"appendonly no",
	}, extra...)
	return strings.Join(lines, "\n") + "\n"
}

// poll calls check every 50 ms until it returns nil, and fails the test
// with the last error when timeout passes first.
func poll(t testing.TB, timeout time.Duration, what string, check func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := check(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: %s: not done in %s: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StartRedisCluster starts a Redis Cluster of masters nodes (at least 3,
// no replicas) on loopback ports, joins them with redis-cli --cluster
// create, and waits until every node reports cluster_state:ok. It returns
// the nodes' addresses. The nodes are stopped when cleanup runs.
func StartRedisCluster(t testing.TB, cleanup *Cleanup, masters int) []string {
	t.Helper()
	if masters < 3 {
		t.Fatalf("testenv: a Redis Cluster needs at least 3 masters, not %d", masters)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("testenv: redis-cli not found; install it (Debian: apt-get install -y redis-tools)")
	}
	addrs := make([]string, masters)
	for i := range addrs {
		p := startRedisProcess(t, cleanup, func(port int) string {
			// The node keeps its cluster state in nodes.conf in its folder.
			// cluster-port sets the cluster bus port explicitly: the default,
			// port+10000, can be taken or beyond 65535 for a high free port.
			return dataNodeConf(port,
				"cluster-enabled yes",
				"cluster-port "+strconv.Itoa(freePort(t)),
				"cluster-config-file nodes.conf",
				"cluster-node-timeout 2000")
		})
		addrs[i] = p.addr
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: redis-cli --cluster create failed: %v\n%s", err, out)
	}

	for _, addr := range addrs {
		waitClusterOK(t, addr, masters)
	}
	return addrs
}

// waitClusterOK waits until the node at addr lists all nodes of the
// cluster and reports cluster_state:ok.
func waitClusterOK(t testing.TB, addr string, nodes int) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	poll(t, 30*time.Second, "cluster_state:ok on "+addr, func(ctx context.Context) error {
		info, err := c.ClusterInfo(ctx).Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") ||
			!strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(nodes)+"\r\n") {
			return errors.New("cluster info:\n" + info)
		}
		return nil
	})
}

// Sentinel is a Redis master with one replica, monitored by three
// Sentinels under SentinelMaster with a quorum of 2.
type Sentinel struct {
	// Addrs are the addresses of the Sentinels.
	Addrs []string
	// MasterName is the name the Sentinels monitor the master under.
	MasterName string
	// Servers are the master and the replica as started. Which of them is
	// the master changes with Failover.
	Servers []string
}

// StartRedisSentinel starts a master, a replica of it and three Sentinels
// on loopback ports, and waits until every Sentinel has found the replica
// and the other two Sentinels, so that a failover can start at once. All
// five processes are stopped when cleanup runs.
func StartRedisSentinel(t testing.TB, cleanup *Cleanup) *Sentinel {
	t.Helper()
	master := startRedisProcess(t, cleanup, func(port int) string { return dataNodeConf(port) })
	_, masterPort, _ := strings.Cut(master.addr, ":")
	replica := startRedisProcess(t, cleanup, func(port int) string { return dataNodeConf(port) },
		"--replicaof", "127.0.0.1", masterPort)
	rc := redis.NewClient(&redis.Options{Addr: replica.addr, MaxRetries: -1})
	defer rc.Close()
	poll(t, 30*time.Second, "replication link of "+replica.addr, func(ctx context.Context) error {
		info, err := rc.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return errors.New("info replication:\n" + info)
		}
		return nil
	})

	s := &Sentinel{MasterName: SentinelMaster, Servers: []string{master.addr, replica.addr}}
	for range 3 {
		p := startRedisProcess(t, cleanup, func(port int) string {
			return strings.Join([]string{
				"bind 127.0.0.1",
				"port " + strconv.Itoa(port),
				fmt.Sprintf("sentinel monitor %s 127.0.0.1 %s 2", SentinelMaster, masterPort),
				"sentinel down-after-milliseconds " + SentinelMaster + " 1000",
				"sentinel failover-timeout " + SentinelMaster + " 3000",
			}, "\n") + "\n"
		}, "--sentinel")
		s.Addrs = append(s.Addrs, p.addr)
	}
	for _, addr := range s.Addrs {
		waitSentinelReady(t, addr)
	}
	return s
}

// waitSentinelReady waits until the Sentinel at addr sees the master up,
// its replica and the two other Sentinels.
func waitSentinelReady(t testing.TB, addr string) {
	t.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer sc.Close()
	poll(t, 30*time.Second, "discovery by the Sentinel at "+addr, func(ctx context.Context) error {
		m, err := sc.Master(ctx, SentinelMaster).Result()
		if err != nil {
			return err
		}
		if m["flags"] != "master" || m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" {
			return fmt.Errorf("sentinel master %s: flags=%s num-slaves=%s num-other-sentinels=%s",
				SentinelMaster, m["flags"], m["num-slaves"], m["num-other-sentinels"])
		}
		return nil
	})
}

// Master returns the master address that the first Sentinel reports.
func (s *Sentinel) Master(t testing.TB) string {
	t.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addrs[0], MaxRetries: -1})
	defer sc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hp, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
	if err != nil || len(hp) != 2 {
		t.Fatalf("testenv: SENTINEL GET-MASTER-ADDR-BY-NAME %s: %v %v", s.MasterName, hp, err)
	}
	return hp[0] + ":" + hp[1]
}

// Failover waits until the replica has every write the master had when
// Failover was called, runs SENTINEL FAILOVER, and waits until every
// Sentinel reports the promoted replica as the master and that server
// reports role:master. It returns the new master's address.
func (s *Sentinel) Failover(t testing.TB) string {
	t.Helper()
	old := s.Master(t)
	replica := ""
	for _, addr := range s.Servers {
		if addr != old {
			replica = addr
		}
	}
	waitReplicated(t, old, replica)

	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addrs[0], MaxRetries: -1})
	defer sc.Close()
	// A Sentinel replies NOGOODSLAVE while its view of the replica is
	// stale, so the command is repeated until it starts a failover.
	poll(t, 15*time.Second, "SENTINEL FAILOVER "+s.MasterName, func(ctx context.Context) error {
		return sc.Failover(ctx, s.MasterName).Err()
	})

	for _, addr := range s.Addrs {
		s.waitMaster(t, addr, replica)
	}
	nc := redis.NewClient(&redis.Options{Addr: replica, MaxRetries: -1})
	defer nc.Close()
	poll(t, 30*time.Second, replica+" taking the master role", func(ctx context.Context) error {
		info, err := nc.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "role:master") {
			return errors.New("info replication:\n" + info)
		}
		return nil
	})
	return replica
}

// waitMaster waits until the Sentinel at addr reports master as the
// master's address.
func (s *Sentinel) waitMaster(t testing.TB, addr, master string) {
	t.Helper()
	c := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	poll(t, 30*time.Second, "new master reported by the Sentinel at "+addr, func(ctx context.Context) error {
		hp, err := c.GetMasterAddrByName(ctx, s.MasterName).Result()
		if err != nil {
			return err
		}
		if got := strings.Join(hp, ":"); got != master {
			return fmt.Errorf("master is %s, want %s", got, master)
		}
		return nil
	})
}

// waitReplicated waits until the replica's replication offset reaches
// the master's offset at the time of the call.
func waitReplicated(t testing.TB, master, replica string) {
	t.Helper()
	mc := redis.NewClient(&redis.Options{Addr: master, MaxRetries: -1})
	defer mc.Close()
	rc := redis.NewClient(&redis.Options{Addr: replica, MaxRetries: -1})
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := mc.Info(ctx, "replication").Result()
	if err != nil {
		t.Fatalf("testenv: info replication of %s: %v", master, err)
	}
	want, err := infoInt(info, "master_repl_offset")
	if err != nil {
		t.Fatalf("testenv: %s: %v", master, err)
	}
	poll(t, 10*time.Second, "replication to "+replica, func(ctx context.Context) error {
		info, err := rc.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		got, err := infoInt(info, "slave_repl_offset")
		if err != nil {
			return err
		}
		if got < want {
			return fmt.Errorf("replica offset %d, master offset %d", got, want)
		}
		return nil
	})
}

// infoInt reads an integer field of an INFO reply.
func infoInt(info, field string) (int64, error) {
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO has no field %s", field)
}

// StartRedisTLS starts a redis-server that serves TLS with the PEM
// certificate and key in certFile and keyFile, and requires a client
// certificate signed by a CA in caFile (tls-auth-clients yes). It returns
// the TLS address. The server also listens without TLS on another port,
// which only the readiness check uses. It is stopped when cleanup runs.
func StartRedisTLS(t testing.TB, cleanup *Cleanup, certFile, keyFile, caFile string) string {
	t.Helper()
	var tlsAddr string
	startRedisProcess(t, cleanup, func(port int) string {
		tlsPort := freePort(t)
		tlsAddr = fmt.Sprintf("127.0.0.1:%d", tlsPort)
		return dataNodeConf(port,
			"tls-port "+strconv.Itoa(tlsPort),
			fmt.Sprintf("tls-cert-file %q", certFile),
			fmt.Sprintf("tls-key-file %q", keyFile),
			fmt.Sprintf("tls-ca-cert-file %q", caFile),
			"tls-auth-clients yes")
	})
	return tlsAddr
}
