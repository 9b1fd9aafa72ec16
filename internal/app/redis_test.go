package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/testenv"
)

func TestNewRedisClientByMode(t *testing.T) {
	tests := []struct {
		name     string
		cfg      config.Redis
		wantAddr string // Options().Addr of a *redis.Client; "" for a cluster client
	}{
		{"standalone", config.Redis{Mode: config.RedisStandalone, Addr: "127.0.0.1:6379", Username: "app", Password: "pw", DB: 2},
			"127.0.0.1:6379"},
		{"empty mode is standalone", config.Redis{Addr: "127.0.0.1:6380", Username: "app", Password: "pw", DB: 2},
			"127.0.0.1:6380"},
		{"sentinel", config.Redis{Mode: config.RedisSentinel, Addrs: []string{"127.0.0.1:26379"}, MasterName: "mymaster",
			Username: "app", Password: "pw", DB: 2}, "FailoverClient"},
		{"cluster", config.Redis{Mode: config.RedisCluster, Addrs: []string{"127.0.0.1:7000", "127.0.0.1:7001"},
			Username: "app", Password: "pw"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb, err := NewRedisClient(tt.cfg)
			if err != nil {
				t.Fatalf("NewRedisClient: %v", err)
			}
			defer rdb.Close()
			var user, password string
			var db int
			var dial, read, write time.Duration
			var tlsConfig *tls.Config
			switch c := rdb.(type) {
			case *redis.Client:
				o := c.Options()
				if o.Addr != tt.wantAddr {
					t.Errorf("client address = %q, want %q", o.Addr, tt.wantAddr)
				}
				user, password, db = o.Username, o.Password, o.DB
				dial, read, write, tlsConfig = o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.TLSConfig
			case *redis.ClusterClient:
				if tt.wantAddr != "" {
					t.Fatalf("got a cluster client, want a client of %s", tt.wantAddr)
				}
				o := c.Options()
				if strings.Join(o.Addrs, ",") != strings.Join(tt.cfg.Addrs, ",") {
					t.Errorf("cluster seed nodes = %q, want %q", o.Addrs, tt.cfg.Addrs)
				}
				user, password = o.Username, o.Password
				dial, read, write, tlsConfig = o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.TLSConfig
			default:
				t.Fatalf("client type %T", rdb)
			}
			if user != tt.cfg.Username || password != tt.cfg.Password || db != tt.cfg.DB {
				t.Errorf("credentials %q/%q db %d, want %q/%q db %d", user, password, db,
					tt.cfg.Username, tt.cfg.Password, tt.cfg.DB)
			}
			if dial != 5*time.Second || read != 3*time.Second || write != 3*time.Second {
				t.Errorf("timeouts dial %s read %s write %s, want 5s, 3s, 3s", dial, read, write)
			}
			if tlsConfig != nil {
				t.Error("TLS is configured although redis.tls.enabled is false")
			}
		})
	}
}

func TestNewRedisClientRejectsUnknownMode(t *testing.T) {
	_, err := NewRedisClient(config.Redis{Mode: "replicated", Addr: "127.0.0.1:6379"})
	if err == nil || !strings.Contains(err.Error(), `redis.mode: "replicated"`) {
		t.Errorf("error = %v, want one naming redis.mode and the value", err)
	}
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
}

func newTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	caKey := newKey(t)
	caTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smartgate test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		certFile = writePEM(t, dir, name+".pem", "CERTIFICATE", der)
		keyFile = writePEM(t, dir, name+".key", "PRIVATE KEY", keyDER)
		return certFile, keyFile
	}
	p := testPKI{caFile: writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = issue(2, "server", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = issue(3, "client", x509.ExtKeyUsageClientAuth)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, dir, name, blockType string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestNewRedisClientTLSFiles(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		tls      config.RedisTLS
		wantErr  string // fragment of the error; "" for success
		notFound bool   // the error wraps fs.ErrNotExist
	}{
		{"CA and client certificate",
			config.RedisTLS{Enabled: true, CAFile: pki.caFile, ServerName: "redis.internal",
				CertFile: pki.clientCert, KeyFile: pki.clientKey}, "", false},
		{"system roots", config.RedisTLS{Enabled: true}, "", false},
		{"missing CA file",
			config.RedisTLS{Enabled: true, CAFile: filepath.Join(dir, "missing.pem")}, "redis.tls.ca_file", true},
		{"CA file without a certificate",
			config.RedisTLS{Enabled: true, CAFile: notPEM}, "redis.tls.ca_file: " + notPEM + " contains no PEM certificate", false},
		{"missing client key",
			config.RedisTLS{Enabled: true, CertFile: pki.clientCert, KeyFile: filepath.Join(dir, "missing.key")},
			"redis.tls.cert_file and key_file", true},
		{"client key of another certificate",
			config.RedisTLS{Enabled: true, CertFile: pki.clientCert, KeyFile: pki.serverKey},
			"redis.tls.cert_file and key_file", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb, err := NewRedisClient(config.Redis{Mode: config.RedisStandalone, Addr: "127.0.0.1:6379", TLS: tt.tls})
			if tt.wantErr != "" {
				if err == nil {
					rdb.Close()
					t.Fatalf("NewRedisClient succeeded, want an error with %q", tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				if tt.notFound && !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("error = %v, want it to wrap fs.ErrNotExist", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewRedisClient: %v", err)
			}
			defer rdb.Close()
			c := rdb.(*redis.Client).Options().TLSConfig
			if c == nil {
				t.Fatal("no TLS configuration although redis.tls.enabled is true")
			}
			if c.MinVersion != tls.VersionTLS12 || c.InsecureSkipVerify || c.ServerName != tt.tls.ServerName {
				t.Errorf("TLS MinVersion %x, InsecureSkipVerify %v, ServerName %q; want TLS 1.2, false, %q",
					c.MinVersion, c.InsecureSkipVerify, c.ServerName, tt.tls.ServerName)
			}
			if (c.RootCAs != nil) != (tt.tls.CAFile != "") {
				t.Errorf("RootCAs set %v, want %v", c.RootCAs != nil, tt.tls.CAFile != "")
			}
			if len(c.Certificates) != map[bool]int{true: 1, false: 0}[tt.tls.CertFile != ""] {
				t.Errorf("%d client certificates, want one only when cert_file is set", len(c.Certificates))
			}
		})
	}
}

// TestNewRedisClientTLSConnects talks to a redis-server that requires TLS
// and client certificates.
func TestNewRedisClientTLSConnects(t *testing.T) {
	var cleanup testenv.Cleanup
	t.Cleanup(cleanup.Run)
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	addr := testenv.StartRedisTLS(t, &cleanup, pki.serverCert, pki.serverKey, pki.caFile)
	other := newTestPKI(t, t.TempDir())

	tests := []struct {
		name    string
		tls     config.RedisTLS
		wantOK  bool
		wantErr string // fragment of the error; "" when any error will do
	}{
		{"CA and client certificate",
			config.RedisTLS{Enabled: true, CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey}, true, ""},
		{"without a client certificate",
			config.RedisTLS{Enabled: true, CAFile: pki.caFile}, false, "certificate required"},
		{"server certificate of an unknown CA",
			config.RedisTLS{Enabled: true, CAFile: other.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey},
			false, "certificate signed by unknown authority"},
		{"server name the certificate lacks",
			config.RedisTLS{Enabled: true, CAFile: pki.caFile, ServerName: "redis.internal",
				CertFile: pki.clientCert, KeyFile: pki.clientKey}, false, "redis.internal"},
		{"without TLS", config.RedisTLS{}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb, err := NewRedisClient(config.Redis{Mode: config.RedisStandalone, Addr: addr, TLS: tt.tls})
			if err != nil {
				t.Fatalf("NewRedisClient: %v", err)
			}
			defer rdb.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = rdb.Set(ctx, "smartgate-tls-test", "1", time.Minute).Err()
			if tt.wantOK && err != nil {
				t.Errorf("SET over TLS: %v", err)
			}
			if !tt.wantOK && err == nil {
				t.Error("SET succeeded, want a failed connection")
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("SET: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
