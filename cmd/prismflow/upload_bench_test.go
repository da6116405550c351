package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkUpload measures the upload API the way an operator would,
// with outside load tools against `prismflow run` (embedded broker,
// registry, PostgreSQL and blob folder), as the front processes of a
// scaled-out deployment and with every stage in the same process:
//
//   - hey-100KB: 50 concurrent clients posting the same 100 KB text
//     file (content addressing stores its blob once);
//   - wrk-100KB-unique: 50 concurrent connections posting a different
//     100 KB text file each time (a wrk Lua script), so every upload
//     writes and fsyncs a new blob;
//   - 16MB: one 16 MB upload at a time.
//
// It reports the latency percentiles in ms as the tools print them.
// Goals: p95 under 50 ms at 50 clients, a 16 MB upload under 1 s.
// Needs hey (go install github.com/rakyll/hey@latest) and wrk (Debian
// package wrk); make bench-upload installs both.
// Run with: go test -run '^$' -bench Upload -benchtime 1x ./cmd/prismflow
func BenchmarkUpload(b *testing.B) {
	for _, mode := range []struct{ name, stages string }{
		// An API front of a scaled-out deployment: no stage, the
		// (here embedded) broker beside it.
		{"api-only", "none"},
		// The API with the persist stage, as docker-compose and the
		// Kubernetes manifests run it; the other stages elsewhere.
		{"api-persist", "persist"},
		// make run: every stage in the same process, digesting the
		// uploads while they arrive, on the same cores.
		{"embedded-all", ""},
	} {
		b.Run(mode.name, func(b *testing.B) {
			p := startPrismflowWith(b, "", "", "", "PRISMFLOW_AUTH_RATE_PER_SECOND=0", "PRISMFLOW_STAGES="+mode.stages)
			benchUploads(b, p.api)
		})
	}
}

func benchUploads(b *testing.B, api string) {
	dir := b.TempDir()
	body100k := filepath.Join(dir, "request.txt")
	if err := os.WriteFile(body100k, textBody("richiesta di quotazione", 100<<10), 0o644); err != nil {
		b.Fatal(err)
	}
	url := api + "/v1/documents?filename=request.txt"

	b.Run("hey-100KB", func(b *testing.B) {
		hey := lookTool(b, "hey")
		for range b.N {
			out := runTool(b, hey, "-n", "3000", "-c", "50", "-m", "POST", "-T", "text/plain", "-D", body100k, url)
			// "Status code distribution:" lists "[202]	3000 responses".
			codes := regexp.MustCompile(`(?m)^\s+\[(\d{3})\]\s+\d+ responses`).FindAllStringSubmatch(out, -1)
			if len(codes) != 1 || codes[0][1] != "202" || strings.Contains(out, "Error distribution") {
				b.Fatalf("hey: not every upload got 202:\n%s", out)
			}
			for _, q := range []string{"50", "95", "99"} {
				// hey prints "95%% in 0.0402 secs".
				b.ReportMetric(1000*percentile(b, out, `(?m)^\s+`+q+`%+ in ([0-9.]+) secs`), "p"+q+"-ms")
			}
			b.ReportMetric(percentile(b, out, `Requests/sec:\s+([0-9.]+)`), "uploads/s")
		}
	})

	b.Run("wrk-100KB-unique", func(b *testing.B) {
		wrk := lookTool(b, "wrk")
		script := filepath.Join(dir, "unique.lua")
		if err := os.WriteFile(script, []byte(uniqueBodyLua), 0o644); err != nil {
			b.Fatal(err)
		}
		for range b.N {
			out := runTool(b, wrk, "-t", "2", "-c", "50", "-d", "20s", "--latency", "-s", script, url)
			if strings.Contains(out, "Non-2xx") {
				b.Fatalf("wrk: some uploads failed:\n%s", out)
			}
			for _, q := range []string{"50", "95", "99"} {
				b.ReportMetric(percentile(b, out, `(?m)^p`+q+` ([0-9]+) us`)/1000, "p"+q+"-ms")
			}
			b.ReportMetric(percentile(b, out, `Requests/sec:\s+([0-9.]+)`), "uploads/s")
		}
	})

	b.Run("16MB", func(b *testing.B) {
		big := textBody("allegato", 16<<20)
		var worst time.Duration
		for i := range b.N {
			body := append([]byte(fmt.Sprintf("upload %d\n", i)), big...)
			start := time.Now()
			resp, err := http.Post(api+"/v1/documents?filename=big.txt", "text/plain", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Fatalf("16 MB upload: %s", resp.Status)
			}
			worst = max(worst, time.Since(start))
		}
		b.ReportMetric(float64(worst.Milliseconds()), "worst-ms")
	})
}

// uniqueBodyLua makes wrk post a different 100 KB text body each time,
// so that no two uploads share a blob. Each wrk thread runs its own Lua
// state, so the thread's number (set in setup) is part of every body:
// without it the threads would send the same sequence of bodies.
const uniqueBodyLua = `
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("id", threads)
end
local filler = string.rep("Richiesta di quotazione per la flotta aziendale, dati del contraente.\n", 1500)
local n = 0
request = function()
  n = n + 1
  local body = "richiesta " .. id .. "-" .. n .. "\n" .. filler
  return wrk.format("POST", nil, {["Content-Type"] = "text/plain"}, body)
end
done = function(summary, latency, requests)
  for _, q in ipairs({50, 95, 99}) do
    io.write(string.format("p%d %d us\n", q, latency:percentile(q)))
  end
end
`

func textBody(line string, size int) []byte {
	var buf bytes.Buffer
	for n := 0; buf.Len() < size; n++ {
		fmt.Fprintf(&buf, "%s %d, dati del contraente e dei veicoli.\n", line, n)
	}
	return buf.Bytes()[:size]
}

// lookTool finds a load tool on PATH or skips the benchmark saying how
// to install it.
func lookTool(b *testing.B, name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	b.Skipf("%s not installed (make bench-upload installs it)", name)
	return ""
}

func runTool(b *testing.B, tool string, args ...string) string {
	out, err := exec.Command(tool, args...).CombinedOutput()
	if err != nil {
		b.Fatalf("%s %v: %v\n%s", tool, args, err, out)
	}
	b.Logf("%s\n%s", filepath.Base(tool), out)
	return string(out)
}

// percentile reads the one number pattern captures from a tool's output.
func percentile(b *testing.B, out, pattern string) float64 {
	m := regexp.MustCompile(pattern).FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("no %q in:\n%s", pattern, out)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		b.Fatal(err)
	}
	return v
}
