// Package metrics defines smartgate's Prometheus metrics. Names follow
// Prometheus conventions: the smartgate_ prefix, base units, _total on
// counters. Labels are bounded: route names, status codes, grant and
// client types, outcomes; never a path, client id or subject.
//
// The metrics are served on the admin listener, not the public one.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the set of smartgate's metrics on one registry.
type Metrics struct {
	Registry *prometheus.Registry

	Requests         *prometheus.CounterVec   // route, code
	RequestDuration  *prometheus.HistogramVec // route
	ConsentDecisions *prometheus.CounterVec   // outcome
	TokensIssued     *prometheus.CounterVec   // grant_type, client_type
	RefreshRotations *prometheus.CounterVec   // client_type
	ReuseDetected    *prometheus.CounterVec   // kind: refresh_token, code
	UpstreamErrors   *prometheus.CounterVec   // operation
	RedisErrors      prometheus.Counter
}

// New registers the metrics on a fresh registry, with the Go and process
// collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartgate_http_requests_total",
			Help: "HTTP requests served on the public listener, by route and status code.",
		}, []string{"route", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "smartgate_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request on the public listener, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		ConsentDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartgate_consent_decisions_total",
			Help: "Consent page outcomes: shown, allowed, partly_allowed, denied, remembered, revoked.",
		}, []string{"outcome"}),
		TokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartgate_tokens_issued_total",
			Help: "Access tokens issued, by grant type and client type.",
		}, []string{"grant_type", "client_type"}),
		RefreshRotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartgate_refresh_rotations_total",
			Help: "Refresh tokens rotated, by client type.",
		}, []string{"client_type"}),
		ReuseDetected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartgate_reuse_detected_total",
			Help: "Reuse of a rotated-out refresh token or a spent authorization code; each revokes its grant.",
		}, []string{"kind"}),
		UpstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smartgate_upstream_errors_total",
			Help: "Failed calls to the upstream identity provider, by operation.",
		}, []string{"operation"}),
		RedisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smartgate_redis_errors_total",
			Help: "Requests that failed because Redis was unreachable or failed.",
		}),
	}
	// Series of known label values start at zero, so that rate() and
	// increase() see their first event.
	for _, o := range []string{"shown", "allowed", "partly_allowed", "denied", "remembered", "revoked"} {
		m.ConsentDecisions.WithLabelValues(o)
	}
	for _, k := range []string{"refresh_token", "code"} {
		m.ReuseDetected.WithLabelValues(k)
	}
	for _, op := range []string{"code_exchange", "refresh", "pass_through", "patient_search"} {
		m.UpstreamErrors.WithLabelValues(op)
	}
	reg.MustRegister(m.Requests, m.RequestDuration, m.ConsentDecisions, m.TokensIssued, m.RefreshRotations,
		m.ReuseDetected, m.UpstreamErrors, m.RedisErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// Observe records one served request.
func (m *Metrics) Observe(route string, code int, took time.Duration) {
	m.Requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.RequestDuration.WithLabelValues(route).Observe(took.Seconds())
}
