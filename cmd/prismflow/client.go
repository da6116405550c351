package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// apiClient talks to a prismflow HTTP API.
type apiClient struct {
	base string
	key  string // API key, sent as a bearer token when set
	http *http.Client
	// progress, when set, is told of every chunk of file bytes sent.
	progress func(n int)
}

func newAPIClient(cmd *cobra.Command) (*apiClient, error) {
	c, err := loadConfig(cmd)
	if err != nil {
		return nil, err
	}
	base, _ := cmd.Flags().GetString("api")
	if base == "" {
		base = "http://" + c.HTTP.Addr
	}
	return &apiClient{base: strings.TrimRight(base, "/"), key: c.APIKey.Reveal(), http: &http.Client{}}, nil
}

func addAPIFlag(cmd *cobra.Command) {
	cmd.Flags().String("api", "", "prismflow API base URL (default http:// + http.addr)")
}

// upload sends a file to the API. A 429 (the key's rate limit) or a 503
// (the pipeline could not take it just now) is waited out as the server
// asks with Retry-After, up to maxUploadTries tries: a folder of
// thousands of files must not fail half-way on a burst limit.
func (c *apiClient) upload(ctx context.Context, path, password string) (uploadResult, error) {
	for try := 1; ; try++ {
		res, sent, err := c.uploadOnce(ctx, path, password)
		var se *statusError
		if err == nil || try == maxUploadTries || !errors.As(err, &se) ||
			(se.Code != http.StatusTooManyRequests && se.Code != http.StatusServiceUnavailable) {
			return res, err
		}
		if c.progress != nil {
			c.progress(-sent) // the bytes go again
		}
		wait := min(max(se.RetryAfter, time.Second), 30*time.Second)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return uploadResult{}, fmt.Errorf("upload %s: %w (after %v)", path, ctx.Err(), err)
		}
	}
}

const maxUploadTries = 10

// uploadOnce streams a file to the API as multipart form data: the pipe
// keeps memory flat whatever the file size. A password (for an encrypted
// PDF) goes as a form field before the file, where the API reads it
// without buffering the file. sent is how many file bytes went out.
func (c *apiClient) uploadOnce(ctx context.Context, path, password string) (res uploadResult, sent int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return uploadResult{}, 0, err
	}
	defer f.Close()
	var counted atomic.Int64
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		var err error
		if password != "" {
			err = mw.WriteField("password", password)
		}
		var part io.Writer
		if err == nil {
			part, err = mw.CreateFormFile("file", filepath.Base(path))
		}
		if err == nil {
			_, err = io.Copy(part, progressReader{f, func(n int) {
				counted.Add(int64(n))
				if c.progress != nil {
					c.progress(n)
				}
			}})
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/documents", pr)
	if err != nil {
		return uploadResult{}, 0, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	err = c.do(req, http.StatusAccepted, &res)
	// The request is over: the copying goroutine ends (or has ended) on
	// the closed pipe.
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return uploadResult{}, int(counted.Load()), fmt.Errorf("upload %s: %w", path, err)
	}
	return res, int(counted.Load()), nil
}

// progressReader reports every read to a progress display.
type progressReader struct {
	r    io.Reader
	tell func(int)
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.tell(n)
	return n, err
}

type uploadResult struct {
	ID        string `json:"id"`
	Filename  string `json:"filename"`
	StatusURL string `json:"status_url"`
}

// document fetches a document's JSON, kept raw so --json prints exactly
// what the API said.
func (c *apiClient) document(ctx context.Context, id string) (json.RawMessage, docSummary, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/documents/"+id, nil)
	if err != nil {
		return nil, docSummary{}, err
	}
	var raw json.RawMessage
	if err := c.do(req, http.StatusOK, &raw); err != nil {
		return nil, docSummary{}, fmt.Errorf("document %s: %w", id, err)
	}
	var d docSummary
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, docSummary{}, fmt.Errorf("document %s: decode: %w", id, err)
	}
	return raw, d, nil
}

func (c *apiClient) do(req *http.Request, want int, out any) error {
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		var e struct {
			Error string `json:"error"`
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		se := &statusError{Code: resp.StatusCode, Status: resp.Status, Msg: strings.TrimSpace(string(body))}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			se.Msg = e.Error
		}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			se.RetryAfter = time.Duration(secs) * time.Second
		}
		return se
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// statusError is an API answer other than the one expected.
type statusError struct {
	Code       int
	Status     string // "429 Too Many Requests"
	Msg        string // the API's error message
	RetryAfter time.Duration
}

func (e *statusError) Error() string { return e.Status + ": " + e.Msg }

// docSummary is the part of a document the CLI prints.
type docSummary struct {
	ID          string  `json:"id"`
	Filename    string  `json:"filename"`
	Status      string  `json:"status"`
	Run         int32   `json:"run"`
	Error       string  `json:"error"`
	PageCount   int     `json:"page_count"`
	Language    string  `json:"language"`
	Category    string  `json:"category"`
	Confidence  float64 `json:"confidence"`
	NeedsReview bool    `json:"needs_review"`
	Stages      map[string]struct {
		Status string    `json:"status"`
		At     time.Time `json:"at"`
	} `json:"stages"`
	Fields map[string]struct {
		Value string `json:"value"`
		Page  int    `json:"page"`
	} `json:"fields"`
	Pages []struct {
		Number     int     `json:"number"`
		Method     string  `json:"method"`
		Confidence float64 `json:"confidence"`
		Text       string  `json:"text"`
	} `json:"pages"`
	Sections []struct {
		Title    string `json:"title"`
		Feedback []struct {
			Severity string `json:"severity"`
			Message  string `json:"message"`
		} `json:"feedback"`
	} `json:"sections"`
	Outputs []struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	} `json:"outputs"`
}

func (d docSummary) finished() bool { return d.Status == "done" || d.Status == "failed" }

// wait polls a document until it is done or failed.
func (c *apiClient) wait(ctx context.Context, id string) (json.RawMessage, docSummary, error) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		raw, d, err := c.document(ctx, id)
		if err == nil && d.finished() {
			return raw, d, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("document %s still %s", id, d.Status)
			}
			return nil, docSummary{}, fmt.Errorf("%w (%v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func statusCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Show a document's status and results",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newAPIClient(cmd)
			if err != nil {
				return err
			}
			raw, d, err := c.document(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
				fmt.Fprintln(cmd.OutOrStdout(), string(raw))
				return nil
			}
			printDocument(cmd.OutOrStdout(), d)
			return nil
		},
	}
	addAPIFlag(cmd)
	cmd.Flags().Bool("json", false, "print the API's JSON")
	return cmd
}

// stageOrder is the order stages are printed in.
var stageOrder = []string{"ingest", "extract", "split", "analyze", "classify", "render", "persist"}

func printDocument(w io.Writer, d docSummary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "document\t%s\n", d.ID)
	fmt.Fprintf(tw, "file\t%s\n", d.Filename)
	fmt.Fprintf(tw, "status\t%s\n", d.Status)
	if d.Error != "" {
		fmt.Fprintf(tw, "error\t%s\n", d.Error)
	}
	fmt.Fprintf(tw, "pages\t%d\n", d.PageCount)
	if d.Language != "" {
		fmt.Fprintf(tw, "language\t%s\n", d.Language)
	}
	if d.Category != "" {
		review := ""
		if d.NeedsReview {
			review = " (needs review)"
		}
		fmt.Fprintf(tw, "category\t%s %.0f%%%s\n", d.Category, d.Confidence*100, review)
	}
	tw.Flush()

	fmt.Fprintln(w, "\nstages:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, name := range stageOrder {
		if s, ok := d.Stages[name]; ok {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, s.Status, s.At.Local().Format(time.TimeOnly))
		} else {
			fmt.Fprintf(tw, "  %s\t-\t\n", name)
		}
	}
	tw.Flush()

	if len(d.Fields) > 0 {
		fmt.Fprintln(w, "\nfields:")
		names := make([]string, 0, len(d.Fields))
		for n := range d.Fields {
			names = append(names, n)
		}
		sort.Strings(names)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, n := range names {
			fmt.Fprintf(tw, "  %s\t%s\t(page %d)\n", n, d.Fields[n].Value, d.Fields[n].Page)
		}
		tw.Flush()
	}
	for _, s := range d.Sections {
		for _, f := range s.Feedback {
			fmt.Fprintf(w, "  [%s] %s: %s\n", f.Severity, s.Title, f.Message)
		}
	}
	if len(d.Outputs) > 0 {
		fmt.Fprintln(w, "\noutputs:")
		for _, o := range d.Outputs {
			fmt.Fprintf(w, "  %s\t%s\n", o.Name, o.URL)
		}
	}
	for _, p := range d.Pages {
		fmt.Fprintf(w, "\n--- page %d (%s, confidence %.2f) ---\n%s\n", p.Number, p.Method, p.Confidence, strings.TrimRight(p.Text, "\n"))
	}
}
