// Command prismflow is the one binary of prismflow: it runs the pipeline
// (all stages, or some of them for a scaled-out deployment), serves the
// HTTP API, and is the command-line client that uploads documents and
// shows their results.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"prismflow/pipeline/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := rootCmd().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "prismflow:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "prismflow",
		Short:         "Document pipeline on Kafka: ingest, extract, split, analyze, classify, render, persist",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("config", "", "YAML configuration file")
	root.AddCommand(runCmd(), uploadCmd(), statusCmd(), configCmd(), trainCmd(), evalCmd(), deadletterCmd(), replayCmd(), inboxCmd(), apikeyCmd())
	return root
}

// loadConfig reads the configuration file named by --config, the
// environment and the command's flags.
func loadConfig(cmd *cobra.Command) (config.Config, error) {
	file, _ := cmd.Flags().GetString("config")
	return config.Load(file, cmd.Flags())
}

func newLogger(c config.Config) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Log.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(c.Log.Format, "json") {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func configCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print every setting with its environment variable and default",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return config.WriteReference(cmd.OutOrStdout())
		},
	}
}
