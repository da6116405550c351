package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"prismflow/connectors/blob"
	"prismflow/connectors/imap"
	"prismflow/pipeline"
	"prismflow/pipeline/config"
	"prismflow/pipeline/topology"
	"prismflow/schemas"
	"prismflow/schemas/events"
	"prismflow/stages/ingest"
	"prismflow/stages/persist"
)

func inboxCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inbox",
		Short: "Watch the configured IMAP mailboxes and ingest each new message",
		Long: `Run only the IMAP inbox connector: each new message of the mailboxes in
the imap section of the configuration becomes a document (its attachments
become documents of their own in the pipeline), and is flagged or moved
once Kafka acknowledged it.

It needs the services of a running pipeline: kafka.brokers (default: the
embedded broker of a 'prismflow run' on this machine, kafka.embedded_addr),
schema_registry.url (default: its embedded registry), blob.url and
postgres.dsn (required: the record of ingested messages lives there).
'prismflow run' runs the connector itself when mailboxes are configured.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			err = inbox(cmd.Context(), c, newLogger(c))
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
}

// inbox runs the connector alone against the services of a running
// pipeline, until ctx is cancelled.
func inbox(ctx context.Context, c config.Config, log *slog.Logger) error {
	if len(c.IMAP.MailboxList()) == 0 {
		return errors.New("inbox: no mailbox configured (imap.mailboxes in the YAML file, or PRISMFLOW_IMAP_ADDR)")
	}
	if c.PG.DSN == "" {
		return errors.New("inbox: postgres.dsn is required (the record of ingested messages lives in PostgreSQL)")
	}
	brokers := c.Kafka.Brokers
	if len(brokers) == 0 {
		brokers = []string{c.Kafka.EmbeddedAddr}
	}
	kopts, err := pipeline.KafkaOpts(c.Kafka)
	if err != nil {
		return err
	}
	regURL := c.Reg.URL
	if regURL == "" {
		regURL = "http://" + c.Reg.EmbeddedAddr
	}
	srcl, err := sr.NewClient(sr.URLs(regURL))
	if err != nil {
		return fmt.Errorf("schema registry client: %w", err)
	}
	blobs, err := blob.Open(ctx, c.BlobURL())
	if err != nil {
		return fmt.Errorf("blob store: %w", err)
	}
	store, err := persist.Open(ctx, c.PG.DSN)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer store.Close()
	pub, err := pipeline.NewPublisher(schemas.NewCodec(srcl), topology.Version, append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, kopts...)...)
	if err != nil {
		return err
	}
	defer pub.Close()
	conn := newInboxConnector(c, pub, blobs, store, log)
	log.Info("prismflow inbox running", "mailboxes", mailboxNames(c.IMAP.MailboxList()), "brokers", brokers)
	return conn.Run(ctx)
}

// newInboxConnector builds the IMAP connector that ingests through a
// Kafka publisher, for both `prismflow inbox` and `prismflow run`.
func newInboxConnector(c config.Config, pub *pipeline.Publisher, blobs blob.Store, store *persist.Store, log *slog.Logger) *imap.Connector {
	return &imap.Connector{
		Ingest: &ingest.Ingester{
			Blobs:    blobs,
			MaxBytes: c.Ingest.MaxBytes,
			Publish: func(ctx context.Context, ev events.DocumentReceived) error {
				return pub.Publish(ctx, topology.DocumentReceived, "ingest", &ev)
			},
		},
		DB:        store.Pool(),
		Tenant:    c.IMAP.Tenant,
		Mailboxes: c.IMAP.MailboxList(),
		Log:       log,
	}
}

func mailboxNames(mbs []config.IMAPMailbox) string {
	names := make([]string, len(mbs))
	for i, m := range mbs {
		names[i] = m.Name
	}
	return strings.Join(names, ",")
}
