package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"prismflow/connectors/httpapi"
	"prismflow/pipeline/pgserver"
	"prismflow/stages/persist"
)

func apikeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "apikey", Short: "Manage the API keys of tenants"}
	create := &cobra.Command{
		Use:   "create --tenant T [--name N]",
		Short: "Create an API key for a tenant and print it (it is shown only this once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tenant, _ := cmd.Flags().GetString("tenant")
			name, _ := cmd.Flags().GetString("name")
			if tenant == "" {
				return errors.New("--tenant is required")
			}
			c, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			dsn := c.PG.DSN
			if dsn == "" {
				// The embedded database: the running one, or start it for
				// the time of the command.
				dir := filepath.Join(c.DataDir, "postgres")
				running, ok, err := pgserver.Running(dir)
				if err != nil {
					return err
				}
				if ok {
					dsn = running
				} else {
					pg, err := pgserver.Start(ctx, pgserver.Config{Dir: dir, Log: newLogger(c)})
					if err != nil {
						return fmt.Errorf("private PostgreSQL: %w", err)
					}
					defer func() {
						sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						defer cancel()
						_ = pg.Stop(sctx)
					}()
					dsn = pg.DSN()
				}
			}
			store, err := persist.Open(ctx, dsn)
			if err != nil {
				return err
			}
			defer store.Close()
			key, err := httpapi.NewKeyStore(store.Pool()).Create(ctx, tenant, name)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), key)
			return nil
		},
	}
	create.Flags().String("tenant", "", "tenant the key belongs to")
	create.Flags().String("name", "", "a name to recognise the key by")
	cmd.AddCommand(create)
	return cmd
}
