package llm

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Cache stores validated answers in PostgreSQL table llm_cache, which
// the persist stage's migrations create (stages/persist/migrations), so
// that one migrator owns the whole schema.
type Cache struct {
	pool *pgxpool.Pool
}

// NewCache returns a cache over pool.
func NewCache(pool *pgxpool.Pool) *Cache { return &Cache{pool: pool} }

// Get returns the cached answer for key, if any.
func (c *Cache) Get(ctx context.Context, key []byte) (string, bool, error) {
	var text string
	err := c.pool.QueryRow(ctx, `UPDATE llm_cache SET hits = hits + 1, last_hit_at = now()
		WHERE key = $1 RETURNING response`, key).Scan(&text)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("llm cache get: %w", err)
	}
	return text, true, nil
}

// Put stores r under key. An existing entry is kept: two workers that
// raced on the same input paid for equivalent answers, and the first one
// is already being served.
func (c *Cache) Put(ctx context.Context, key []byte, provider, model, promptVersion string, r Response) error {
	_, err := c.pool.Exec(ctx, `INSERT INTO llm_cache
		(key, provider, model, prompt_version, response, input_tokens, output_tokens, cost_usd)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (key) DO NOTHING`,
		key, provider, model, promptVersion, r.Text, r.InputTokens, r.OutputTokens, r.CostUSD)
	if err != nil {
		return fmt.Errorf("llm cache put: %w", err)
	}
	return nil
}
