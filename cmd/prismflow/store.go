package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"prismflow/pipeline/config"
	"prismflow/pipeline/pgserver"
	"prismflow/stages/persist"
)

// openCommandStore opens the configured database for a command that is
// not the pipeline: postgres.dsn, else the private PostgreSQL under
// data_dir, the running one (a `prismflow run` owns it) or, if none runs,
// one started for the time of the command. close releases both.
func openCommandStore(ctx context.Context, c config.Config, log *slog.Logger) (*persist.Store, func(), error) {
	dsn := c.PG.DSN
	stop := func() {}
	if dsn == "" {
		dir := filepath.Join(c.DataDir, "postgres")
		running, ok, err := pgserver.Running(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("private PostgreSQL: %w", err)
		}
		if ok {
			dsn = running
		} else {
			pg, err := pgserver.Start(ctx, pgserver.Config{Dir: dir, Log: log})
			if err != nil {
				return nil, nil, fmt.Errorf("private PostgreSQL: %w", err)
			}
			stop = func() {
				sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := pg.Stop(sctx); err != nil {
					log.Error("stop private PostgreSQL", "err", err)
				}
			}
			dsn = pg.DSN()
		}
	}
	store, err := persist.Open(ctx, dsn)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return store, func() { store.Close(); stop() }, nil
}
