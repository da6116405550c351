package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/time/rate"
)

// ErrUnknownKey is returned for a key that does not exist or was revoked.
var ErrUnknownKey = errors.New("unknown or revoked API key")

// KeyStore keeps API keys in PostgreSQL, hashed. A key shows once, when
// it is created; what is stored cannot be turned back into it.
type KeyStore struct{ pool *pgxpool.Pool }

// NewKeyStore returns a store on pool (the persist database, whose
// migrations create the table).
func NewKeyStore(pool *pgxpool.Pool) *KeyStore { return &KeyStore{pool: pool} }

// keyPrefix makes keys recognisable in configuration and secret scanners.
const keyPrefix = "pf_"

// Create makes a new key for tenant and returns it.
func (k *KeyStore) Create(ctx context.Context, tenant, name string) (string, error) {
	if tenant == "" {
		return "", errors.New("create API key: no tenant")
	}
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	key := keyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(key))
	id := hex.EncodeToString(sum[:6])
	if _, err := k.pool.Exec(ctx, `INSERT INTO api_keys (id, tenant, name, hash) VALUES ($1, $2, $3, $4)`,
		id, tenant, name, sum[:]); err != nil {
		return "", fmt.Errorf("create API key: %w", err)
	}
	return key, nil
}

// Lookup returns the tenant and id of key.
func (k *KeyStore) Lookup(ctx context.Context, key string) (tenant, id string, err error) {
	sum := sha256.Sum256([]byte(key))
	err = k.pool.QueryRow(ctx, `SELECT tenant, id FROM api_keys WHERE hash = $1 AND revoked_at IS NULL`, sum[:]).Scan(&tenant, &id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", ErrUnknownKey
	}
	if err != nil {
		return "", "", fmt.Errorf("look up API key: %w", err)
	}
	return tenant, id, nil
}

// Auth decides who a request is.
type Auth struct {
	// Keys authenticates bearer keys; nil: keys are not accepted.
	Keys *KeyStore
	// Required refuses requests without a valid key. Off only for an
	// API on loopback (the embedded run), see AuthRequired.
	Required bool
	// PerSecond and Burst limit each key's requests (0: no limit).
	PerSecond float64
	Burst     int

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// AuthRequired says whether an API listening on addr must authenticate:
// always unless it listens on loopback only, or when forced.
func AuthRequired(addr string, forced bool) bool {
	if forced {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return true
	}
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

type tenantKey struct{}

type actorKey struct{}

// actorOf names who made a request, for the record of decisions: the
// API key's tenant and id, or "anonymous" on an open loopback API.
func actorOf(r *http.Request) string {
	if a, ok := r.Context().Value(actorKey{}).(string); ok {
		return a
	}
	return "anonymous"
}

// tenantOf returns the tenant the middleware attached.
func tenantOf(r *http.Request) string {
	if t, ok := r.Context().Value(tenantKey{}).(string); ok {
		return t
	}
	return DefaultTenant
}

// middleware authenticates, rate-limits and attaches the tenant.
func (a *Auth) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, id := DefaultTenant, "anonymous"
		if h := r.Header.Get("Authorization"); h != "" {
			key, ok := strings.CutPrefix(h, "Bearer ")
			if !ok || a.Keys == nil {
				unauthorized(w, "send the API key as Authorization: Bearer KEY")
				return
			}
			var err error
			tenant, id, err = a.Keys.Lookup(r.Context(), strings.TrimSpace(key))
			if errors.Is(err, ErrUnknownKey) {
				unauthorized(w, err.Error())
				return
			}
			if err != nil {
				writeError(w, http.StatusServiceUnavailable, "could not check the API key; retry")
				return
			}
		} else if a.Required {
			unauthorized(w, "this API needs an API key: Authorization: Bearer KEY (prismflow apikey create --tenant T)")
			return
		}
		if wait := a.reserve(id); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			writeError(w, http.StatusTooManyRequests, "rate limit of this API key exceeded; retry after the Retry-After seconds")
			return
		}
		ctx := context.WithValue(r.Context(), tenantKey{}, tenant)
		if id != "anonymous" {
			ctx = context.WithValue(ctx, actorKey{}, tenant+"/key:"+id)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// reserve takes a token from the key's bucket, or says how long until
// one is free (without taking it).
func (a *Auth) reserve(id string) time.Duration {
	if a.PerSecond <= 0 {
		return 0
	}
	a.mu.Lock()
	if a.limiters == nil {
		a.limiters = map[string]*rate.Limiter{}
	}
	l := a.limiters[id]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(a.PerSecond), max(a.Burst, 1))
		a.limiters[id] = l
	}
	a.mu.Unlock()
	r := l.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return d
	}
	return 0
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="prismflow"`)
	writeError(w, http.StatusUnauthorized, msg)
}

// errKeyInFlight says an upload with the same Idempotency-Key is still
// under way.
var errKeyInFlight = errors.New("an upload with this Idempotency-Key is still in progress")

// idempotency remembers which document an Idempotency-Key produced.
type idempotency struct{ pool *pgxpool.Pool }

// claim reserves key for tenant. It returns the document of an earlier
// upload with the key, or "" when the caller owns the key now and must
// settle it with done or release.
func (i idempotency) claim(ctx context.Context, tenant, key string) (string, error) {
	tag, err := i.pool.Exec(ctx, `INSERT INTO idempotency_keys (tenant, key) VALUES ($1, $2) ON CONFLICT DO NOTHING`, tenant, key)
	if err != nil {
		return "", fmt.Errorf("idempotency key: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return "", nil
	}
	var doc *string
	if err := i.pool.QueryRow(ctx, `SELECT document FROM idempotency_keys WHERE tenant = $1 AND key = $2`, tenant, key).Scan(&doc); err != nil {
		return "", fmt.Errorf("idempotency key: %w", err)
	}
	if doc == nil {
		return "", errKeyInFlight
	}
	return *doc, nil
}

func (i idempotency) done(ctx context.Context, tenant, key, doc string) error {
	_, err := i.pool.Exec(ctx, `UPDATE idempotency_keys SET document = $3 WHERE tenant = $1 AND key = $2`, tenant, key, doc)
	return err
}

func (i idempotency) release(ctx context.Context, tenant, key string) {
	_, _ = i.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE tenant = $1 AND key = $2 AND document IS NULL`, tenant, key)
}
