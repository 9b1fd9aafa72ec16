package config

import (
	"reflect"
	"testing"
)

// withRedis returns validYAML with its redis section replaced by section,
// which holds the indented lines below "redis:".
func withRedis(t *testing.T, section string) string {
	t.Helper()
	return edit(t, validYAML, "redis:\n  addr: 127.0.0.1:6379\n", "redis:\n"+section)
}

func TestRedisValidateRejects(t *testing.T) {
	const sentinel = "  mode: sentinel\n  master_name: mymaster\n  addrs:\n    - 127.0.0.1:26379\n"
	tests := []struct {
		name    string
		section string
		want    problemWant
	}{
		{"unknown mode",
			"  mode: replicated\n  addr: 127.0.0.1:6379\n",
			problemWant{"redis.mode", `"replicated" is not standalone, sentinel or cluster`, "mode: replicated"}},
		{"standalone without addr",
			"  mode: standalone\n",
			problemWant{"redis.addr", "missing; set the host:port of the Redis server", "redis:"}},
		{"standalone addr without port",
			"  addr: 127.0.0.1\n",
			problemWant{"redis.addr", `"127.0.0.1" is not host:port`, "addr: 127.0.0.1"}},
		{"standalone addr with port out of range",
			"  addr: redis.example.org:70000\n",
			problemWant{"redis.addr", "the port must be a number from 1 to 65535", "addr: redis.example.org"}},
		{"standalone with addrs",
			"  addr: 127.0.0.1:6379\n  addrs: [127.0.0.1:6380]\n",
			problemWant{"redis.addrs", "is for sentinel and cluster modes; in standalone mode set addr only", "addrs:"}},
		{"standalone with master_name",
			"  addr: 127.0.0.1:6379\n  master_name: mymaster\n",
			problemWant{"redis.master_name", "is for sentinel mode only", "master_name:"}},
		{"standalone with sentinel password",
			"  addr: 127.0.0.1:6379\n  sentinel_password: secret\n",
			problemWant{"redis.sentinel_password", "is for sentinel mode only", "sentinel_password:"}},
		{"sentinel without master_name",
			"  mode: sentinel\n  addrs: [127.0.0.1:26379]\n",
			problemWant{"redis.master_name", "missing; set the name the Sentinels monitor the master under", "redis:"}},
		{"sentinel without addrs",
			"  mode: sentinel\n  master_name: mymaster\n",
			problemWant{"redis.addrs", "missing; list the host:port of each Sentinel", "redis:"}},
		{"sentinel with addr",
			sentinel + "  addr: 127.0.0.1:6379\n",
			problemWant{"redis.addr", "is for standalone mode; in sentinel mode list the addresses in addrs", "addr: 127.0.0.1:6379"}},
		{"sentinel address without port",
			sentinel + "    - sentinel-2.example.org\n",
			problemWant{"redis.addrs[1]", `"sentinel-2.example.org" is not host:port`, "- sentinel-2.example.org"}},
		{"sentinel address listed twice",
			sentinel + "    - \"127.0.0.1:26379\"\n",
			problemWant{"redis.addrs[1]", `"127.0.0.1:26379" is listed twice`, `- "127.0.0.1:26379"`}},
		{"sentinel username without password",
			sentinel + "  sentinel_username: smartgate\n",
			problemWant{"redis.sentinel_password", "missing; sentinel_username needs sentinel_password", "redis:"}},
		{"cluster without addrs",
			"  mode: cluster\n",
			problemWant{"redis.addrs", "missing; list the host:port of one or more cluster nodes", "redis:"}},
		{"cluster with addr",
			"  mode: cluster\n  addr: 127.0.0.1:7000\n  addrs: [127.0.0.1:7001]\n",
			problemWant{"redis.addr", "is for standalone mode; in cluster mode list the addresses in addrs", "addr: 127.0.0.1:7000"}},
		{"cluster with database 1",
			"  mode: cluster\n  addrs: [127.0.0.1:7000]\n  db: 1\n",
			problemWant{"redis.db", "1: Redis Cluster has database 0 only", "db: 1"}},
		{"cluster with master_name",
			"  mode: cluster\n  addrs: [127.0.0.1:7000]\n  master_name: mymaster\n",
			problemWant{"redis.master_name", "is for sentinel mode only; remove it in cluster mode", "master_name:"}},
		{"cluster key prefix with a hash tag",
			"  mode: cluster\n  addrs: [127.0.0.1:7000]\n  key_prefix: \"{sg}:\"\n",
			problemWant{"redis.key_prefix", `"{sg}:" must not contain { or } in cluster mode`, "key_prefix:"}},
		{"negative database",
			"  addr: 127.0.0.1:6379\n  db: -1\n",
			problemWant{"redis.db", "-1 is negative", "db: -1"}},
		{"TLS certificate without key",
			"  addr: 127.0.0.1:6379\n  tls:\n    enabled: true\n    cert_file: tls/client.pem\n",
			problemWant{"redis.tls.cert_file", "set both cert_file and key_file, or neither", "cert_file:"}},
		{"TLS key without certificate",
			"  addr: 127.0.0.1:6379\n  tls:\n    enabled: true\n    key_file: tls/client.key\n",
			problemWant{"redis.tls.cert_file", "set both cert_file and key_file, or neither", "tls:"}},
		{"TLS files while TLS is off",
			"  addr: 127.0.0.1:6379\n  tls:\n    ca_file: tls/ca.pem\n    server_name: redis.example.org\n",
			problemWant{"redis.tls.enabled", "is false, but ca_file, server_name is set; set enabled: true", "tls:"}},
		{"TLS without certificate verification",
			"  addr: 127.0.0.1:6379\n  tls:\n    enabled: true\n    insecure_skip_verify: true\n",
			problemWant{"", `unknown key "insecure_skip_verify"`, "insecure_skip_verify:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := withRedis(t, tt.section)
			checkOneProblem(t, doc, loadProblems(t, doc), tt.want)
		})
	}
}

func TestRedisValidateAccepts(t *testing.T) {
	tests := []struct {
		name    string
		section string
		want    Redis
	}{
		{"addr only stays standalone",
			"  addr: 127.0.0.1:6379\n",
			Redis{Mode: RedisStandalone, Addr: "127.0.0.1:6379", KeyPrefix: DefaultKeyPrefix}},
		{"standalone on a host name with a database",
			"  mode: standalone\n  addr: redis.example.org:6379\n  db: 3\n",
			Redis{Mode: RedisStandalone, Addr: "redis.example.org:6379", DB: 3, KeyPrefix: DefaultKeyPrefix}},
		{"standalone on IPv6 loopback",
			"  addr: \"[::1]:6379\"\n",
			Redis{Mode: RedisStandalone, Addr: "[::1]:6379", KeyPrefix: DefaultKeyPrefix}},
		{"sentinel with credentials and a database",
			"  mode: sentinel\n  master_name: smartgate\n  addrs: [s1.example.org:26379, s2.example.org:26379, s3.example.org:26379]\n" +
				"  username: app\n  password: data-secret\n  sentinel_username: watcher\n  sentinel_password: sentinel-secret\n  db: 2\n",
			Redis{Mode: RedisSentinel, MasterName: "smartgate",
				Addrs:    []string{"s1.example.org:26379", "s2.example.org:26379", "s3.example.org:26379"},
				Username: "app", Password: "data-secret", SentinelUsername: "watcher", SentinelPassword: "sentinel-secret",
				DB: 2, KeyPrefix: DefaultKeyPrefix}},
		{"sentinel password without user name",
			"  mode: sentinel\n  master_name: smartgate\n  addrs: [127.0.0.1:26379]\n  sentinel_password: sentinel-secret\n",
			Redis{Mode: RedisSentinel, MasterName: "smartgate", Addrs: []string{"127.0.0.1:26379"},
				SentinelPassword: "sentinel-secret", KeyPrefix: DefaultKeyPrefix}},
		{"cluster with one seed node and database 0",
			"  mode: cluster\n  addrs: [redis-1.example.org:6379]\n  db: 0\n  key_prefix: \"smart:\"\n",
			Redis{Mode: RedisCluster, Addrs: []string{"redis-1.example.org:6379"}, KeyPrefix: "smart:"}},
		// Validation reads no files: a missing CA file is found when the
		// gateway builds its Redis client.
		{"TLS with files that are read at startup",
			"  addr: redis.example.org:6380\n  tls:\n    enabled: true\n    ca_file: no/such/ca.pem\n" +
				"    server_name: redis.internal\n    cert_file: no/such/client.pem\n    key_file: no/such/client.key\n",
			Redis{Mode: RedisStandalone, Addr: "redis.example.org:6380", KeyPrefix: DefaultKeyPrefix,
				TLS: RedisTLS{Enabled: true, CAFile: "no/such/ca.pem", ServerName: "redis.internal",
					CertFile: "no/such/client.pem", KeyFile: "no/such/client.key"}}},
		{"TLS on the system roots",
			"  mode: cluster\n  addrs: [redis-1.example.org:6379]\n  tls:\n    enabled: true\n",
			Redis{Mode: RedisCluster, Addrs: []string{"redis-1.example.org:6379"}, KeyPrefix: DefaultKeyPrefix,
				TLS: RedisTLS{Enabled: true}}},
		{"key prefix with a brace outside cluster mode",
			"  addr: 127.0.0.1:6379\n  key_prefix: \"{sg}:\"\n",
			Redis{Mode: RedisStandalone, Addr: "127.0.0.1:6379", KeyPrefix: "{sg}:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustLoad(t, withRedis(t, tt.section))
			if !reflect.DeepEqual(cfg.Redis, tt.want) {
				t.Errorf("redis = %+v\nwant    %+v", cfg.Redis, tt.want)
			}
		})
	}
}

func TestRedisModeDefaults(t *testing.T) {
	tests := []struct {
		name string
		mode RedisMode
		want RedisMode
	}{
		{"empty mode is standalone", "", RedisStandalone},
		{"sentinel is kept", RedisSentinel, RedisSentinel},
		{"cluster is kept", RedisCluster, RedisCluster},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Redis: Redis{Mode: tt.mode}}
			ApplyDefaults(&c)
			if c.Redis.Mode != tt.want {
				t.Errorf("mode = %q, want %q", c.Redis.Mode, tt.want)
			}
		})
	}
}
