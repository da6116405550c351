package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"prismflow/pipeline"
	"prismflow/pipeline/config"
	"prismflow/pipeline/topology"
	"prismflow/schemas"
)

// operatorClients connects to the configured (or embedded) broker and
// registry, as the operator tools need them.
func operatorClients(c config.Config) (*kgo.Client, *schemas.Codec, error) {
	brokers := c.Kafka.Brokers
	if len(brokers) == 0 {
		brokers = []string{c.Kafka.EmbeddedAddr}
	}
	regURL := c.Reg.URL
	if regURL == "" {
		regURL = "http://" + c.Reg.EmbeddedAddr
	}
	kopts, err := pipeline.KafkaOpts(c.Kafka)
	if err != nil {
		return nil, nil, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, kopts...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	srcl, err := sr.NewClient(sr.URLs(regURL))
	if err != nil {
		cl.Close()
		return nil, nil, fmt.Errorf("schema registry client: %w", err)
	}
	return cl, schemas.NewCodec(srcl), nil
}

func deadletterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deadletter",
		Short: "List, show and redrive the records stages could not process",
	}
	filters := func(c *cobra.Command) {
		c.Flags().String("stage", "", "only dead letters of this stage")
		c.Flags().String("since", "", "only dead letters since this time (RFC 3339) or duration ago (e.g. 24h)")
		c.Flags().StringSlice("id", nil, "only these dead letters (ids from list)")
		c.Flags().StringSlice("document", nil, "only dead letters of these documents")
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List dead letters",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			dls, err := selectDeadLetters(c)
			if err != nil {
				return err
			}
			if asJSON, _ := c.Flags().GetBool("json"); asJSON {
				return json.NewEncoder(c.OutOrStdout()).Encode(dls)
			}
			printDeadLetters(c.OutOrStdout(), dls)
			return nil
		},
	}
	filters(list)
	list.Flags().Bool("json", false, "print JSON")
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one dead letter with its original record",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			_ = c.Flags().Set("id", args[0])
			dls, err := selectDeadLetters(c)
			if err != nil {
				return err
			}
			if len(dls) == 0 {
				return fmt.Errorf("no dead letter %s", args[0])
			}
			enc := json.NewEncoder(c.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(dls[0])
		},
	}
	filters(show)
	redrive := &cobra.Command{
		Use:   "redrive",
		Short: "Send dead letters' original records back to their topics",
		Long: `Send the chosen dead letters' original records back to the topics they
came from, with their key and headers. Fix the cause first (configuration,
a newer version): a record that fails again returns to the dead-letter
topic with a higher attempt count. Choose at least one filter.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if !anyFlagSet(c, "stage", "since", "id", "document") {
				return errors.New("choose what to redrive with --stage, --since, --id or --document")
			}
			dls, err := selectDeadLetters(c)
			if err != nil {
				return err
			}
			dry, _ := c.Flags().GetBool("dry-run")
			cfg, _ := loadConfig(c)
			cl, _, err := operatorClients(cfg)
			if err != nil {
				return err
			}
			defer cl.Close()
			for _, d := range dls {
				if !dry {
					if err := pipeline.Redrive(c.Context(), cl, d); err != nil {
						return err
					}
				}
				fmt.Fprintf(c.OutOrStdout(), "%s\t%s\t%s -> %s\n", verb(dry, "redriven", "would redrive"), d.ID, d.DocumentID, d.Topic)
			}
			fmt.Fprintf(c.OutOrStdout(), "%d dead letters %s\n", len(dls), verb(dry, "redriven", "to redrive"))
			return nil
		},
	}
	filters(redrive)
	redrive.Flags().Bool("dry-run", false, "only print what would be redriven")
	cmd.AddCommand(list, show, redrive)
	return cmd
}

func verb(dry bool, done, would string) string {
	if dry {
		return would
	}
	return done
}

func anyFlagSet(c *cobra.Command, names ...string) bool {
	for _, n := range names {
		if c.Flags().Changed(n) {
			return true
		}
	}
	return false
}

// parseSince accepts an RFC 3339 time or a duration back from now.
func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration", s)
	}
	return t, nil
}

func selectDeadLetters(c *cobra.Command) ([]pipeline.DeadLetterRecord, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	stage, _ := c.Flags().GetString("stage")
	sinceFlag, _ := c.Flags().GetString("since")
	ids, _ := c.Flags().GetStringSlice("id")
	docs, _ := c.Flags().GetStringSlice("document")
	since, err := parseSince(sinceFlag)
	if err != nil {
		return nil, err
	}
	cl, codec, err := operatorClients(cfg)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	all, err := pipeline.ReadDeadLetters(c.Context(), cl, codec, topology.DeadLetter)
	if err != nil {
		return nil, err
	}
	var out []pipeline.DeadLetterRecord
	for _, d := range all {
		switch {
		case stage != "" && d.Meta.Stage != stage,
			!since.IsZero() && d.At.Before(since),
			len(ids) > 0 && !slices.Contains(ids, d.ID),
			len(docs) > 0 && !slices.Contains(docs, d.DocumentID):
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

func printDeadLetters(w io.Writer, dls []pipeline.DeadLetterRecord) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAT\tSTAGE\tDOCUMENT\tATTEMPTS\tKIND\tERROR")
	for _, d := range dls {
		kind := "transient"
		if d.Permanent {
			kind = "permanent"
		}
		msg := d.Error
		if len(msg) > 120 {
			msg = msg[:117] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.At.Local().Format(time.DateTime), d.Meta.Stage, d.DocumentID, d.Attempts, kind, msg)
	}
	tw.Flush()
}

func replayCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay --stage S (--from TIME [--to TIME] | --document ID... | --reset --from TIME)",
		Short: "Reprocess documents through a stage and every stage after it",
		Long: `Reprocess documents through stage S and everything after it.

By default the chosen input records of S are republished as a new run of
each document (with a replay header): results are versioned, the newest run
is what the API shows, and earlier runs stay stored. This works while the
pipeline runs.

With --reset, S's consumer group is rewound to --from instead, so S handles
every record since then again as the same runs; it refuses while S runs.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			stage, _ := c.Flags().GetString("stage")
			topics, ok := topology.Inputs[stage]
			if !ok {
				return fmt.Errorf("--stage must be one of %s", strings.Join(topology.Names, ", "))
			}
			fromFlag, _ := c.Flags().GetString("from")
			toFlag, _ := c.Flags().GetString("to")
			docs, _ := c.Flags().GetStringSlice("document")
			reset, _ := c.Flags().GetBool("reset")
			dry, _ := c.Flags().GetBool("dry-run")
			from, err := parseSince(fromFlag)
			if err != nil {
				return err
			}
			to, err := parseSince(toFlag)
			if err != nil {
				return err
			}
			if (len(docs) > 0) == (fromFlag != "") {
				return errors.New("choose either --document or --from")
			}
			cfg, err := loadConfig(c)
			if err != nil {
				return err
			}
			cl, codec, err := operatorClients(cfg)
			if err != nil {
				return err
			}
			defer cl.Close()
			out := c.OutOrStdout()
			if reset {
				if len(docs) > 0 || toFlag != "" {
					return errors.New("--reset rewinds to --from; it takes neither --document nor --to")
				}
				group := pipeline.Stage{Name: stage}.Group()
				if dry {
					fmt.Fprintf(out, "would rewind group %s on %v to %s\n", group, topics, from.Format(time.RFC3339))
					return nil
				}
				offsets, err := pipeline.ResetOffsets(c.Context(), kadm.NewClient(cl), group, topics, from)
				if err != nil {
					return err
				}
				offsets.Each(func(o kadm.Offset) {
					fmt.Fprintf(out, "rewound %s %s[%d] to %d\n", group, o.Topic, o.Partition, o.At)
				})
				return nil
			}
			done, err := pipeline.Republish(c.Context(), cl, codec, pipeline.ReplayQuery{Topics: topics, Documents: docs, From: from, To: to}, dry)
			for _, r := range done {
				fmt.Fprintf(out, "%s\t%s run %d\tfrom %s[%d]@%d\n", verb(dry, "replayed", "would replay"), r.Document, r.Run, r.Topic, r.Partition, r.Offset)
			}
			fmt.Fprintf(out, "%d records %s through %s\n", len(done), verb(dry, "replayed", "to replay"), stage)
			return err
		},
	}
	f := cmd.Flags()
	f.String("stage", "", "stage to replay from: "+strings.Join(topology.Names, ", "))
	f.String("from", "", "records written since this time (RFC 3339) or duration ago (e.g. 2h)")
	f.String("to", "", "records written before this time (with --from)")
	f.StringSlice("document", nil, "replay these documents")
	f.Bool("reset", false, "rewind the stage's consumer group instead of republishing (stage must be stopped)")
	f.Bool("dry-run", false, "only print what would be replayed")
	_ = cmd.MarkFlagRequired("stage")
	return cmd
}
