package protocol

import "errors"

// Sentinel errors; every error returned by this package wraps one of them, so
// a receiver can count rejections by cause with errors.Is.
var (
	ErrTopic        = errors.New("malformed topic")
	ErrTopicVersion = errors.New("unknown topic version")
	ErrVersion      = errors.New("unknown payload version")
	ErrTruncated    = errors.New("truncated payload")
	ErrMalformed    = errors.New("malformed payload")
	ErrChecksum     = errors.New("checksum mismatch")
	ErrTrailing     = errors.New("trailing bytes after payload")
	ErrEmpty        = errors.New("empty batch")
	ErrTooLarge     = errors.New("batch too large")
	ErrID           = errors.New("invalid id")
	ErrMetric       = errors.New("invalid metric name")
	ErrValue        = errors.New("invalid value")
	ErrTimestamp    = errors.New("invalid timestamp")
	ErrQuality      = errors.New("invalid quality")
	ErrIndex        = errors.New("table index out of range")
	ErrJSON         = errors.New("malformed JSON message")
	ErrEpoch        = errors.New("invalid epoch")
	ErrRange        = errors.New("invalid seq range")
	ErrCommand      = errors.New("invalid command")
)

// Cause returns a short, stable name for the sentinel err wraps ("checksum",
// "timestamp", …) for use as a metrics label; "other" when none matches.
func Cause(err error) string {
	for _, c := range causes {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return "other"
}

var causes = []struct {
	err  error
	name string
}{
	{ErrTopic, "topic"}, {ErrTopicVersion, "topic_version"}, {ErrVersion, "version"},
	{ErrTruncated, "truncated"}, {ErrMalformed, "malformed"}, {ErrChecksum, "checksum"}, {ErrTrailing, "trailing"},
	{ErrEmpty, "empty"}, {ErrTooLarge, "too_large"}, {ErrID, "id"}, {ErrMetric, "metric"},
	{ErrValue, "value"}, {ErrTimestamp, "timestamp"}, {ErrQuality, "quality"},
	{ErrIndex, "index"}, {ErrJSON, "json"}, {ErrEpoch, "epoch"}, {ErrRange, "range"}, {ErrCommand, "command"},
}
