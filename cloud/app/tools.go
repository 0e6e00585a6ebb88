package app

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// ReadSecret reads one secret from r: the first line, without its line
// ending. Empty secrets are refused.
func ReadSecret(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("cannot read the secret from standard input: %w", err)
	}
	s := strings.TrimRight(line, "\r\n")
	if s == "" {
		return "", errors.New("cannot hash an empty secret: type it on standard input, e.g. echo -n 'secret' | bin/cloud hash-password")
	}
	return s, nil
}

// HashPassword returns the bcrypt hash ("$2a$…") the org file stores for a
// gateway password (and the broker for a service password).
func HashPassword(secret string) (string, error) {
	if len(secret) > 72 {
		return "", fmt.Errorf("cannot hash a password of %d bytes: bcrypt takes at most 72", len(secret))
	}
	h, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("cannot hash password: %w", err)
	}
	return string(h), nil
}

// HashToken returns "sha256:<hex>", the form the org file stores for a
// staff API token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// NewLogger builds the process logger (stderr) from the log section.
func NewLogger(l Log, w io.Writer) *slog.Logger {
	var level slog.Level
	switch l.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
