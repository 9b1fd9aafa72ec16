// Package session keeps browser sessions in Redis behind gorilla/sessions.
//
// The cookie holds only a signed, random session id; the values live in
// Redis under <prefix>sess:{<id>}. Handlers use the typed Browser wrapper
// and never touch the raw value map. The session binds the pending
// authorization requests to the browser that started them.
package session

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/gob"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/redis/go-redis/v9"

	"github.com/smartgate/smartgate/internal/store"
)

// RedisStore is a sessions.Store whose values live in Redis.
type RedisStore struct {
	rdb     redis.UniversalClient
	prefix  string
	codecs  []securecookie.Codec
	options sessions.Options
}

// NewRedisStore returns a store that signs the session id cookie with
// hashKey (at least 32 bytes) and keeps values for maxAge.
func NewRedisStore(rdb redis.UniversalClient, prefix string, hashKey []byte, secure bool, maxAge time.Duration) *RedisStore {
	codec := securecookie.New(hashKey, nil)
	codec.MaxAge(int(maxAge.Seconds()))
	return &RedisStore{
		rdb:    rdb,
		prefix: prefix,
		codecs: []securecookie.Codec{codec},
		options: sessions.Options{
			Path:     "/",
			MaxAge:   int(maxAge.Seconds()),
			Secure:   secure,
			HttpOnly: true,
			SameSite: http.SameSiteLaxMode,
		},
	}
}

// CookieName returns the session cookie's name: with TLS the __Host-
// prefix pins it to this host, path / and Secure.
func CookieName(secure bool) string {
	if secure {
		return "__Host-smartgate"
	}
	return "smartgate"
}

func (s *RedisStore) key(id string) string { return s.prefix + "sess:{" + id + "}" }

// Get returns the session of the request, cached for the request.
func (s *RedisStore) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(s, name)
}

// New loads the session named in the request's cookie, or starts a new one.
// A missing, forged or expired cookie yields a new empty session.
func (s *RedisStore) New(r *http.Request, name string) (*sessions.Session, error) {
	sess := sessions.NewSession(s, name)
	opts := s.options
	sess.Options = &opts
	sess.IsNew = true
	c, err := r.Cookie(name)
	if err != nil {
		return sess, nil
	}
	if err := securecookie.DecodeMulti(name, c.Value, &sess.ID, s.codecs...); err != nil {
		sess.ID = ""
		return sess, nil
	}
	data, err := s.rdb.Get(r.Context(), s.key(sess.ID)).Bytes()
	if errors.Is(err, redis.Nil) {
		sess.ID = ""
		return sess, nil
	}
	if err != nil {
		return sess, fmt.Errorf("load session: %w: %w", store.ErrUnavailable, err)
	}
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&sess.Values); err != nil {
		sess.ID = ""
		return sess, nil
	}
	sess.IsNew = false
	return sess, nil
}

// Save writes the session to Redis and sets the cookie. MaxAge < 0 deletes it.
func (s *RedisStore) Save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	ctx := r.Context()
	if sess.Options.MaxAge < 0 {
		if sess.ID != "" {
			if err := s.rdb.Del(ctx, s.key(sess.ID)).Err(); err != nil {
				return fmt.Errorf("delete session: %w: %w", store.ErrUnavailable, err)
			}
		}
		http.SetCookie(w, sessions.NewCookie(sess.Name(), "", sess.Options))
		return nil
	}
	if sess.ID == "" {
		sess.ID = newID()
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(sess.Values); err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	ttl := time.Duration(sess.Options.MaxAge) * time.Second
	if err := s.rdb.Set(ctx, s.key(sess.ID), buf.Bytes(), ttl).Err(); err != nil {
		return fmt.Errorf("save session: %w: %w", store.ErrUnavailable, err)
	}
	encoded, err := securecookie.EncodeMulti(sess.Name(), sess.ID, s.codecs...)
	if err != nil {
		return fmt.Errorf("encode session cookie: %w", err)
	}
	http.SetCookie(w, sessions.NewCookie(sess.Name(), encoded, sess.Options))
	return nil
}

// Regenerate gives the session a new id and deletes the old record, so an
// id known before login is worthless after it (session fixation).
func (s *RedisStore) Regenerate(ctx context.Context, sess *sessions.Session) error {
	if sess.ID != "" {
		if err := s.rdb.Del(ctx, s.key(sess.ID)).Err(); err != nil {
			return fmt.Errorf("delete old session: %w: %w", store.ErrUnavailable, err)
		}
	}
	sess.ID = newID()
	return nil
}

func newID() string {
	return strings.TrimRight(base32.StdEncoding.EncodeToString(securecookie.GenerateRandomKey(32)), "=")
}

const pendingKey = "pending"

// maxPending bounds how many logins one browser may have open at once.
const maxPending = 8

// Browser is the typed view of one browser's session.
type Browser struct {
	store *RedisStore
	sess  *sessions.Session
	name  string
}

// Load returns the browser session of the request.
func (s *RedisStore) Load(r *http.Request, name string) (*Browser, error) {
	sess, err := s.Get(r, name)
	if err != nil {
		return nil, err
	}
	return &Browser{store: s, sess: sess, name: name}, nil
}

// Pending returns the ids of the authorization requests this browser started.
func (b *Browser) Pending() []string {
	ids, _ := b.sess.Values[pendingKey].([]string)
	return ids
}

// HasPending reports whether the browser started the request id.
func (b *Browser) HasPending(id string) bool {
	for _, p := range b.Pending() {
		if p == id {
			return true
		}
	}
	return false
}

// AddPending records a request id, forgetting the oldest beyond maxPending.
func (b *Browser) AddPending(id string) {
	ids := append(b.Pending(), id)
	if len(ids) > maxPending {
		ids = ids[len(ids)-maxPending:]
	}
	b.sess.Values[pendingKey] = ids
}

// RemovePending removes a request id.
func (b *Browser) RemovePending(id string) {
	var keep []string
	for _, p := range b.Pending() {
		if p != id {
			keep = append(keep, p)
		}
	}
	b.sess.Values[pendingKey] = keep
}

// Regenerate gives the session a new id; Save must follow.
func (b *Browser) Regenerate(ctx context.Context) error { return b.store.Regenerate(ctx, b.sess) }

// Save writes the session and its cookie.
func (b *Browser) Save(r *http.Request, w http.ResponseWriter) error { return b.sess.Save(r, w) }

// User is the person signed in to the patient's /apps page.
type User struct {
	Subject string
	Name    string
	Patient string
	// CSRF is the token the page's forms must carry.
	CSRF string
}

const (
	userSubjectKey = "user_sub"
	userNameKey    = "user_name"
	userPatientKey = "user_patient"
	userCSRFKey    = "user_csrf"
)

// SetUser signs a user in to the /apps page for the session's lifetime.
func (b *Browser) SetUser(u User) {
	b.sess.Values[userSubjectKey] = u.Subject
	b.sess.Values[userNameKey] = u.Name
	b.sess.Values[userPatientKey] = u.Patient
	b.sess.Values[userCSRFKey] = u.CSRF
}

// User returns the signed-in user, if any.
func (b *Browser) User() (User, bool) {
	sub, _ := b.sess.Values[userSubjectKey].(string)
	if sub == "" {
		return User{}, false
	}
	name, _ := b.sess.Values[userNameKey].(string)
	patient, _ := b.sess.Values[userPatientKey].(string)
	csrf, _ := b.sess.Values[userCSRFKey].(string)
	return User{Subject: sub, Name: name, Patient: patient, CSRF: csrf}, true
}

// ClearUser signs the user out of the /apps page.
func (b *Browser) ClearUser() {
	for _, k := range []string{userSubjectKey, userNameKey, userPatientKey, userCSRFKey} {
		delete(b.sess.Values, k)
	}
}
