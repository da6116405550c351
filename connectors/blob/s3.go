package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3 is a Store on an S3 bucket (AWS or a compatible server such as
// MinIO), with every key under an optional prefix. S3 object writes are
// atomic by themselves: an object appears whole or not at all.
type S3 struct {
	client   *s3.Client
	uploader *manager.Uploader
	bucket   string
	prefix   string // "" or ends with "/"
}

// S3Config says where an S3 store lives.
type S3Config struct {
	Bucket string
	Prefix string // key prefix inside the bucket, may be empty
	// Endpoint overrides the AWS endpoint (e.g. http://minio:9000); empty
	// means AWS itself.
	Endpoint string
	Region   string // default us-east-1 when the AWS chain names none
	// PathStyle addresses objects as endpoint/bucket/key instead of
	// bucket.endpoint/key, which MinIO and most local servers need.
	PathStyle bool
}

// NewS3 returns a store on an S3 bucket, with credentials from the
// standard AWS chain (environment, shared config, instance role).
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("blob: s3: bucket is required")
	}
	awsCfg, err := loadAWSConfig(ctx, cfg.Region)
	if err != nil {
		return nil, fmt.Errorf("blob: s3: load AWS config: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Send checksums only where S3 requires them: S3-compatible
		// servers do not all understand the newer default trailers.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &S3{
		client: client,
		// The uploader sends bodies of unknown size in parts of PartSize,
		// so a large original is never held in memory whole.
		uploader: manager.NewUploader(client),
		bucket:   cfg.Bucket,
		prefix:   prefix,
	}, nil
}

func (s *S3) objectKey(key string) (string, error) {
	if err := validateKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) error {
	k, err := s.objectKey(key)
	if err != nil {
		return fmt.Errorf("blob: put: %w", err)
	}
	_, err = s.uploader.Upload(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(k),
		Body:   r,
	})
	if err != nil {
		return fmt.Errorf("blob: put s3://%s/%s: %w", s.bucket, k, err)
	}
	return nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return nil, fmt.Errorf("blob: get: %w", err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)})
	if isNotFound(err) {
		return nil, fmt.Errorf("blob: get s3://%s/%s: %w", s.bucket, k, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: get s3://%s/%s: %w", s.bucket, k, err)
	}
	return out.Body, nil
}

// Exists implements Store.
func (s *S3) Exists(ctx context.Context, key string) (bool, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return false, fmt.Errorf("blob: exists: %w", err)
	}
	_, err = s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)})
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("blob: exists s3://%s/%s: %w", s.bucket, k, err)
	}
	return true, nil
}

// Ping implements Store: the bucket must exist and be reachable with
// our credentials.
func (s *S3) Ping(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		return fmt.Errorf("blob: ping s3://%s: %w", s.bucket, err)
	}
	return nil
}

// isNotFound recognises a missing object by its HTTP status: HEAD
// responses carry no body, so S3's typed NoSuchKey error is not always
// there to match.
func isNotFound(err error) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// String names the store for logs.
func (s *S3) String() string { return "s3://" + path.Join(s.bucket, s.prefix) }
