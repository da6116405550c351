package blob

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// Open returns the store a URL names:
//
//	file:///var/lib/prismflow/blobs
//	s3://bucket/prefix?endpoint=http://minio:9000&region=us-east-1&path_style=true
//
// S3 credentials come from the standard AWS chain, never from the URL,
// so the URL can be logged and kept in plain configuration.
func Open(ctx context.Context, rawURL string) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("blob: open %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("blob: open %q: file URLs must be file:///absolute/path", rawURL)
		}
		if u.Path == "" || u.Path[0] != '/' {
			return nil, fmt.Errorf("blob: open %q: file URLs need an absolute path", rawURL)
		}
		return NewFile(u.Path)
	case "s3":
		q := u.Query()
		cfg := S3Config{
			Bucket:   u.Host,
			Prefix:   u.Path,
			Endpoint: q.Get("endpoint"),
			Region:   q.Get("region"),
		}
		if v := q.Get("path_style"); v != "" {
			if cfg.PathStyle, err = strconv.ParseBool(v); err != nil {
				return nil, fmt.Errorf("blob: open %q: path_style: %w", rawURL, err)
			}
		}
		return NewS3(ctx, cfg)
	default:
		return nil, fmt.Errorf("blob: open %q: unknown scheme %q (want file or s3)", rawURL, u.Scheme)
	}
}

func loadAWSConfig(ctx context.Context, region string) (aws.Config, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, err
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1" // S3-compatible servers accept any region
	}
	return cfg, nil
}
