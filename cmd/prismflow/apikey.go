package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"prismflow/connectors/httpapi"
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
			store, closeStore, err := openCommandStore(ctx, c, newLogger(c))
			if err != nil {
				return err
			}
			defer closeStore()
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
