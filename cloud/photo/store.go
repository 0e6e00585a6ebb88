package photo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Store keeps blobs by key. Keys are content addresses (a photo's id, or
// id+".thumb"), so Put of an existing key may keep the old blob: it is the
// same. Dir is the local one; an S3-compatible bucket is the scale-out
// path (docs/photos.md): Put is PutObject, Open is GetObject with a
// missing object mapped to ErrNotFound.
type Store interface {
	Put(ctx context.Context, key string, data []byte) error
	// Open returns the blob; a missing key is ErrNotFound.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
}

// Dir is a Store in a local directory: key "ab12…" lives in
// <dir>/ab/ab12…; a blob appears whole or not at all (written to a
// temporary file, synced, renamed).
type Dir string

func (d Dir) path(key string) (string, error) {
	if len(key) < 3 || !validKey(key) {
		return "", fmt.Errorf("invalid photo key %q", key)
	}
	return filepath.Join(string(d), key[:2], key), nil
}

func validKey(k string) bool {
	for i, c := range []byte(k) {
		ok := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '.' && i > 0
		if !ok {
			return false
		}
	}
	return true
}

// Put stores data under key unless it is there already.
func (d Dir) Put(_ context.Context, key string, data []byte) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return fmt.Errorf("cannot create photo directory: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot store photo %s: %w", key, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("cannot store photo %s: %w", key, err)
	}
	return nil
}

// Open opens the blob of key.
func (d Dir) Open(_ context.Context, key string) (io.ReadCloser, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, fmt.Errorf("cannot open photo: %v: %w", err, ErrNotFound)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("cannot open photo %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot open photo %s: %w", key, err)
	}
	return f, nil
}
