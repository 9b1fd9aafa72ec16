package app

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartgate/smartgate/internal/config"
)

// Timeouts of every Redis connection. A Redis command that takes longer
// fails, so that it does not hold the HTTP request that waits for it.
const (
	redisDialTimeout  = 5 * time.Second
	redisReadTimeout  = 3 * time.Second
	redisWriteTimeout = 3 * time.Second
)

// NewRedisClient builds the client of the configured mode: a plain client
// for standalone (also when the mode is empty), a failover client that
// queries the Sentinels for the master, or a cluster client. It reads the TLS
// files but does not connect, so an unreachable Redis is not an error here.
func NewRedisClient(cfg config.Redis) (redis.UniversalClient, error) {
	tlsConfig, err := redisTLSConfig(cfg.TLS)
	if err != nil {
		return nil, err
	}
	switch cfg.Mode {
	case config.RedisStandalone, "":
		return redis.NewClient(&redis.Options{
			Addr:         cfg.Addr,
			Username:     cfg.Username,
			Password:     cfg.Password,
			DB:           cfg.DB,
			DialTimeout:  redisDialTimeout,
			ReadTimeout:  redisReadTimeout,
			WriteTimeout: redisWriteTimeout,
			TLSConfig:    tlsConfig,
		}), nil
	case config.RedisSentinel:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       cfg.MasterName,
			SentinelAddrs:    cfg.Addrs,
			SentinelUsername: cfg.SentinelUsername,
			SentinelPassword: cfg.SentinelPassword,
			Username:         cfg.Username,
			Password:         cfg.Password,
			DB:               cfg.DB,
			DialTimeout:      redisDialTimeout,
			ReadTimeout:      redisReadTimeout,
			WriteTimeout:     redisWriteTimeout,
			TLSConfig:        tlsConfig,
		}), nil
	case config.RedisCluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:        cfg.Addrs,
			Username:     cfg.Username,
			Password:     cfg.Password,
			DialTimeout:  redisDialTimeout,
			ReadTimeout:  redisReadTimeout,
			WriteTimeout: redisWriteTimeout,
			TLSConfig:    tlsConfig,
		}), nil
	}
	return nil, fmt.Errorf("redis.mode: %q is not standalone, sentinel or cluster", cfg.Mode)
}

// redisTLSConfig returns nil when TLS is off. Server certificates are
// always verified: against the CA file when one is named, else against
// the system's roots.
func redisTLSConfig(c config.RedisTLS) (*tls.Config, error) {
	if !c.Enabled {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis.tls.ca_file: %s contains no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.cert_file and key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
