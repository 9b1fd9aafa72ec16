package store

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Grant is the access a user gave a client: the content of an
// authorization code and of the refresh token family it starts.
type Grant struct {
	ClientID    string
	Scope       string // granted scopes, space-separated, as requested
	Subject     string
	Patient     string
	FHIRUser    string
	Name        string
	Audience    string
	Nonce       string
	AuthTime    int64 // Unix seconds of the upstream login
	RedirectURI string
	// CodeChallenge is the app's S256 PKCE challenge.
	CodeChallenge string
	// Upstream is the identity provider's refresh token, encrypted, kept
	// for online_access: the family lives only as long as it refreshes.
	Upstream string
	// JKT is the thumbprint of the DPoP key the family is bound to, or "".
	JKT string
	// Context is the EHR launch context beyond the patient (encounter,
	// fhirContext, intent, ...) as JSON, or "".
	Context string
}

// RefreshTerms decides whether and how a refresh token family starts when a
// code is redeemed. Rotate, GraceWindow and IdleTimeout come from the
// client's refresh policy; Expires (zero for none) caps the family.
type RefreshTerms struct {
	Issue       bool
	Rotate      bool
	GraceWindow time.Duration
	IdleTimeout time.Duration
	Expires     time.Time
}

// SaveCode stores an authorization code for its grant.
func (s *Store) SaveCode(ctx context.Context, grantID, secretHash string, g Grant, rt RefreshTerms, ttl time.Duration) error {
	abs := int64(0)
	if !rt.Expires.IsZero() {
		abs = rt.Expires.UnixMilli()
	}
	key := s.key("code", grantID)
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, key,
		"sh", secretHash, "cid", g.ClientID, "ru", g.RedirectURI, "cc", g.CodeChallenge,
		"scope", g.Scope, "sub", g.Subject, "pat", g.Patient, "fu", g.FHIRUser, "name", g.Name,
		"aud", g.Audience, "nonce", g.Nonce, "at", g.AuthTime, "up", g.Upstream, "ctx", g.Context,
		"rt", boolFlag(rt.Issue), "rot", boolFlag(rt.Rotate), "grace", rt.GraceWindow.Milliseconds(),
		"idle", rt.IdleTimeout.Milliseconds(), "abs", abs)
	pipe.PExpire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable("save code", err)
	}
	return nil
}

func boolFlag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// CodeMismatchError names the check of a code exchange failed. The code
// is spent all the same.
type CodeMismatchError struct{ Field string }

func (e *CodeMismatchError) Error() string {
	return e.Field + " does not match the authorization request"
}

// ErrCodeReused: the code was redeemed before. Its grant is now revoked.
var ErrCodeReused = errors.New("authorization code already used")

// redeemScript redeems a code in one step. A second use deletes the refresh
// token family the first use started and marks the grant revoked, so the
// access token issued from it stops passing introspection.
//
// KEYS: code, family, revoked marker.
// ARGV: secret hash, client id, redirect URI, S256 of the verifier,
// refresh secret hash, now (ms), revoked-marker TTL (ms), used-code TTL (ms),
// DPoP key thumbprint.
var redeemScript = redis.NewScript(`
local c = redis.call('HGETALL', KEYS[1])
if #c == 0 then return {'missing'} end
local f = {}
for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
if f.sh ~= ARGV[1] then return {'missing'} end
if f.used == '1' then
  redis.call('DEL', KEYS[2], KEYS[1])
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[7])
  return {'reused'}
end
redis.call('HSET', KEYS[1], 'used', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[8])
if f.cid ~= ARGV[2] then return {'mismatch', 'client_id'} end
if f.ru ~= ARGV[3] then return {'mismatch', 'redirect_uri'} end
if f.cc ~= ARGV[4] then return {'mismatch', 'code_verifier'} end
local refresh = '0'
if f.rt == '1' then
  local now = tonumber(ARGV[6])
  local ttl = tonumber(f.idle)
  local abs = tonumber(f.abs)
  if abs > 0 and abs - now < ttl then ttl = abs - now end
  if ttl > 0 then
    redis.call('HSET', KEYS[2], 'cur', ARGV[5], 'cid', f.cid, 'scope', f.scope, 'sub', f.sub,
      'pat', f.pat, 'fu', f.fu, 'aud', f.aud, 'rot', f.rot, 'grace', f.grace, 'idle', f.idle,
      'abs', f.abs, 'created', ARGV[6], 'up', f.up or '', 'jkt', ARGV[9], 'ctx', f.ctx or '')
    redis.call('PEXPIRE', KEYS[2], ttl)
    refresh = '1'
  end
end
return {'ok', f.scope, f.sub, f.pat, f.fu, f.name, f.aud, f.nonce, f.at, refresh, f.up or '', f.ctx or ''}
`)

// Redemption is a code exchange as the token endpoint received it.
type Redemption struct {
	GrantID, SecretHash string // from the code
	ClientID            string
	RedirectURI         string
	Challenge           string // S256 of the presented code_verifier
	RefreshHash         string // hash of the refresh token secret, used when the grant includes one
	JKT                 string // DPoP key thumbprint to bind the family to, or ""
	AccessLifetime      time.Duration
}

// Redeem spends an authorization code. It checks the client, redirect URI
// and PKCE challenge, and starts the refresh token family when the grant
// includes one. It returns the grant and whether a refresh token was issued.
func (s *Store) Redeem(ctx context.Context, r Redemption) (Grant, bool, error) {
	keys := []string{s.key("code", r.GrantID), s.key("fam", r.GrantID), s.key("revoked", r.GrantID)}
	lifetime := r.AccessLifetime.Milliseconds()
	res, err := s.batch.runScript(ctx, redeemScript, keys, r.SecretHash, r.ClientID, r.RedirectURI, r.Challenge, r.RefreshHash,
		s.now().UnixMilli(), lifetime, lifetime, r.JKT).StringSlice()
	if err != nil {
		return Grant{}, false, unavailable("redeem code", err)
	}
	switch res[0] {
	case "missing":
		return Grant{}, false, ErrNotFound
	case "reused":
		return Grant{}, false, ErrCodeReused
	case "mismatch":
		return Grant{}, false, &CodeMismatchError{Field: res[1]}
	}
	at, _ := strconv.ParseInt(res[8], 10, 64)
	g := Grant{ClientID: r.ClientID, Scope: res[1], Subject: res[2], Patient: res[3], FHIRUser: res[4],
		Name: res[5], Audience: res[6], Nonce: res[7], AuthTime: at, RedirectURI: r.RedirectURI,
		Upstream: res[10], JKT: r.JKT, Context: res[11]}
	return g, res[9] == "1", nil
}

var (
	// ErrRefreshReused: a rotated-out refresh token came back after the
	// grace window. The whole family is now revoked.
	ErrRefreshReused = errors.New("refresh token reused")
	// ErrWrongClient: the refresh token belongs to another client.
	ErrWrongClient = errors.New("refresh token issued to another client")
	// ErrWrongKey: the refresh token is bound to a DPoP key that the
	// request did not prove possession of.
	ErrWrongKey = errors.New("refresh token bound to another DPoP key")
)

// refreshScript checks a refresh token, rotates it when the family
// rotates, and treats any other secret as reuse: the family is deleted and
// its grant marked revoked.
//
// KEYS: family, revoked marker.
// ARGV: presented secret hash, client id, new secret hash, now (ms),
// revoked-marker TTL (ms), DPoP key thumbprint of the request.
var refreshScript = redis.NewScript(`
local c = redis.call('HGETALL', KEYS[1])
if #c == 0 then return {'missing'} end
local f = {}
for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
if f.cid ~= ARGV[2] then return {'wrong_client'} end
if (f.jkt or '') ~= '' and f.jkt ~= ARGV[6] then return {'wrong_key'} end
local now = tonumber(ARGV[4])
local abs = tonumber(f.abs)
if abs > 0 and now >= abs then
  redis.call('DEL', KEYS[1])
  return {'missing'}
end
local rotated = '0'
if ARGV[1] == f.cur then
  if f.rot == '1' then
    redis.call('HSET', KEYS[1], 'prev', f.cur, 'prev_at', ARGV[4], 'cur', ARGV[3])
    redis.call('HDEL', KEYS[1], 'grace_used')
    rotated = '1'
  end
elseif f.prev == ARGV[1] and f.grace_used ~= '1' and now - tonumber(f.prev_at) < tonumber(f.grace) then
  redis.call('HSET', KEYS[1], 'cur', ARGV[3], 'grace_used', '1')
  rotated = '1'
else
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[5])
  return {'reused'}
end
local ttl = tonumber(f.idle)
if abs > 0 and abs - now < ttl then ttl = abs - now end
redis.call('PEXPIRE', KEYS[1], ttl)
return {'ok', f.scope, f.sub, f.pat, f.fu, f.aud, rotated, f.up or '', f.ctx or ''}
`)

// RefreshUse is a refresh request as the token endpoint received it.
type RefreshUse struct {
	GrantID, SecretHash string // from the refresh token
	ClientID            string
	NewHash             string // hash of the next secret, used when the family rotates
	JKT                 string // DPoP key thumbprint the request proved, or ""
	AccessLifetime      time.Duration
}

// Refresh uses a refresh token. It returns the grant and whether the token
// was rotated (then the caller hands out the one behind NewHash).
func (s *Store) Refresh(ctx context.Context, u RefreshUse) (Grant, bool, error) {
	keys := []string{s.key("fam", u.GrantID), s.key("revoked", u.GrantID)}
	res, err := s.batch.runScript(ctx, refreshScript, keys, u.SecretHash, u.ClientID, u.NewHash,
		s.now().UnixMilli(), u.AccessLifetime.Milliseconds(), u.JKT).StringSlice()
	if err != nil {
		return Grant{}, false, unavailable("refresh", err)
	}
	switch res[0] {
	case "missing":
		return Grant{}, false, ErrNotFound
	case "wrong_client":
		return Grant{}, false, ErrWrongClient
	case "wrong_key":
		return Grant{}, false, ErrWrongKey
	case "reused":
		return Grant{}, false, ErrRefreshReused
	}
	g := Grant{ClientID: u.ClientID, Scope: res[1], Subject: res[2], Patient: res[3], FHIRUser: res[4], Audience: res[5],
		Upstream: res[7], JKT: u.JKT, Context: res[8]}
	return g, res[6] == "1", nil
}

var setIfExistsScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 0
`)

// SetUpstream replaces the encrypted upstream refresh token of a family
// that still exists.
func (s *Store) SetUpstream(ctx context.Context, grantID, upstream string) error {
	if err := setIfExistsScript.Run(ctx, s.rdb, []string{s.key("fam", grantID)}, "up", upstream).Err(); err != nil {
		return unavailable("store upstream token", err)
	}
	return nil
}

// RevokeGrant ends a grant: its refresh token family is deleted and the
// grant is marked revoked for accessLifetime, so that its access tokens
// stop passing introspection.
func (s *Store) RevokeGrant(ctx context.Context, grantID string, accessLifetime time.Duration) error {
	pipe := s.rdb.TxPipeline()
	pipe.Set(ctx, s.key("revoked", grantID), "1", accessLifetime)
	pipe.Del(ctx, s.key("fam", grantID))
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable("revoke grant", err)
	}
	return nil
}

// FamilyScope returns the scope and client of a refresh token family, so
// that a narrowed refresh request can be checked before the token is used.
func (s *Store) FamilyScope(ctx context.Context, grantID string) (scope, clientID string, err error) {
	vals, err := s.rdb.HMGet(ctx, s.key("fam", grantID), "scope", "cid").Result()
	if err != nil {
		return "", "", unavailable("read refresh family", err)
	}
	if vals[0] == nil || vals[1] == nil {
		return "", "", ErrNotFound
	}
	return fmt.Sprint(vals[0]), fmt.Sprint(vals[1]), nil
}

// LiveRefresh describes the current refresh token of a family.
type LiveRefresh struct {
	Grant
	Expires time.Time
}

// LookupRefresh returns the family of a refresh token when the token is
// the family's current one. A rotated-out token, an ended family or a
// wrong secret is ErrNotFound. It changes nothing.
func (s *Store) LookupRefresh(ctx context.Context, grantID, secretHash string) (*LiveRefresh, error) {
	key := s.key("fam", grantID)
	pipe := s.rdb.Pipeline()
	all := pipe.HGetAll(ctx, key)
	ttl := pipe.PTTL(ctx, key)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, unavailable("look up refresh token", err)
	}
	f := all.Val()
	if len(f) == 0 || subtle.ConstantTimeCompare([]byte(f["cur"]), []byte(secretHash)) != 1 {
		return nil, ErrNotFound
	}
	return &LiveRefresh{
		Grant: Grant{ClientID: f["cid"], Scope: f["scope"], Subject: f["sub"], Patient: f["pat"], FHIRUser: f["fu"],
			Audience: f["aud"], JKT: f["jkt"], Context: f["ctx"]},
		Expires: s.now().Add(ttl.Val()),
	}, nil
}

// ClaimJTI records a client assertion's or DPoP proof's jti for ttl and
// reports whether it was new. A false result is a replay.
func (s *Store) ClaimJTI(ctx context.Context, owner, jti string, ttl time.Duration) (bool, error) {
	key := s.prefix + "jti:{" + owner + "}:" + jti
	cmd := s.batch.runOnce(ctx, func() *redis.Cmd {
		return redis.NewCmd(ctx, "set", key, "1", "px", max(ttl.Milliseconds(), 1), "nx")
	})
	// SET NX replies OK when it set the key and nil when the key existed.
	err := cmd.Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, unavailable("record jti", err)
	}
	if cmd.Val() != "OK" {
		return false, unavailable("record jti", fmt.Errorf("unexpected reply %q to SET NX", fmt.Sprint(cmd.Val())))
	}
	return true, nil
}

// RevokeAccessToken puts an access token's jti on the deny list until the
// token expires.
func (s *Store) RevokeAccessToken(ctx context.Context, jti string, until time.Time) error {
	ttl := until.Sub(s.now())
	if ttl <= 0 {
		return nil
	}
	if err := s.rdb.Set(ctx, s.key("revokedjti", jti), "1", ttl).Err(); err != nil {
		return unavailable("revoke access token", err)
	}
	return nil
}

// AccessTokenRevoked reports whether an access token was revoked, by its
// own jti or through its grant (grantID may be "" for tokens without one).
func (s *Store) AccessTokenRevoked(ctx context.Context, grantID, jti string) (bool, error) {
	cmds := []redis.Cmder{redis.NewIntCmd(ctx, "exists", s.key("revokedjti", jti))}
	if grantID != "" {
		cmds = append(cmds, redis.NewIntCmd(ctx, "exists", s.key("revoked", grantID)))
	}
	if err := s.batch.do(ctx, cmds...); err != nil {
		return false, unavailable("check revoked access token", err)
	}
	revoked := false
	for _, cmd := range cmds {
		n, err := cmd.(*redis.IntCmd).Result()
		if err != nil {
			return false, unavailable("check revoked access token", err)
		}
		revoked = revoked || n > 0
	}
	return revoked, nil
}
