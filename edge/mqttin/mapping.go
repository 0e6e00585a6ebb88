package mqttin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/protocol"
)

// Sentinel errors; every mapping error wraps one of them, so Cause can name
// it in a metric label.
var (
	ErrMalformed    = errors.New("malformed payload")
	ErrValue        = errors.New("invalid value")
	ErrUnusable     = errors.New("unusable value")
	ErrTooLarge     = errors.New("payload too large")
	ErrAvailability = errors.New("unknown availability payload")
)

// CauseOutOfRange counts, in plantroom_edge_mqtt_errors_total, readings
// outside their field's valid range: mapped and kept with bad quality.
const CauseOutOfRange = "out_of_range"

// Cause returns a short, stable name for the sentinel err wraps, for the
// cause label of plantroom_edge_mqtt_errors_total; "other" when none matches.
func Cause(err error) string {
	switch {
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrValue):
		return "value"
	case errors.Is(err, ErrUnusable):
		return "unusable"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrAvailability):
		return "availability"
	}
	return "other"
}

// FieldError is the failure to map one template field of a message.
type FieldError struct {
	Metric string
	Path   string
	Err    error
}

func (e *FieldError) Error() string {
	path := e.Path
	if path == "" {
		path = "(whole payload)"
	}
	return fmt.Sprintf("cannot map %s to metric %q: %v", path, e.Metric, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// FieldTopic is the concrete topic of a template field for a device:
// "{topic}" in the field's topic pattern replaced by the device's topic.
func FieldTopic(f *config.MQTTField, deviceTopic string) string {
	return strings.ReplaceAll(f.Topic, "{topic}", deviceTopic)
}

// Map turns one MQTT message of a device into readings: one for every
// field of the device's template whose topic is the message's topic.
//
// Every reading is stamped with now, the message's arrival, in Unix
// milliseconds. Device-side times are not used: Tasmota's "Time" is local
// time without a zone, in whatever zone and with whatever clock (NTP or
// not, 1970 after a power cut) the device has, and Shelly status messages
// carry no time of measurement at all. A device publishes a value as it
// measures it, on the plant-room LAN, so arrival is within milliseconds of
// the measurement and on the gateway's synchronised clock.
//
// A field's value is found by its dotted JSON path ("ENERGY.Total"; a
// numeric element indexes an array, "by_minute.0"), or is the whole payload
// when the path is empty. JSON numbers, numeric strings ("23.5") and bools
// (true 1, false 0) are values; a string or bool in the field's map takes
// the mapped number ("ON" → 1). The value is then raw × scale + offset
// (scale 0 means 1).
//
// A field whose path is missing or null in the message is skipped: devices
// leave out what they do not measure. Everything else that cannot become a
// finite number is an error: malformed JSON (ErrMalformed, no readings at
// all), NaN, infinities and overflow (ErrValue), and strings, objects or
// arrays that are neither numbers nor in the map (ErrUnusable). Map returns
// the readings of the fields it could map together with an error that
// joins one *FieldError per field it could not; both may be non-nil.
func Map(t *config.Template, deviceID, deviceTopic, topic string, payload []byte, now time.Time) ([]protocol.Reading, error) {
	if t == nil || t.MQTT == nil {
		return nil, nil
	}
	ts := now.UnixMilli()
	var (
		doc     any
		decoded bool
		out     []protocol.Reading
		errs    []error
	)
	for i := range t.MQTT.Fields {
		f := &t.MQTT.Fields[i]
		if FieldTopic(f, deviceTopic) != topic {
			continue
		}
		var (
			raw any
			ok  bool
		)
		if f.Path == "" {
			raw, ok = wholePayload(payload)
		} else {
			if !decoded {
				var err error
				if doc, err = decodeJSON(payload); err != nil {
					return nil, fmt.Errorf("cannot map message on %q of device %q: %w", topic, deviceID, err)
				}
				decoded = true
			}
			raw, ok = lookup(doc, f.Path)
		}
		if !ok || raw == nil {
			continue
		}
		v, err := fieldValue(f, raw)
		if err != nil {
			errs = append(errs, &FieldError{Metric: f.Metric, Path: f.Path, Err: err})
			continue
		}
		q := protocol.QualityGood
		if !f.Range().Contains(v) {
			q = protocol.QualityBad // kept for audit; the cloud leaves it out of energy, latest values and alarms
		}
		out = append(out, protocol.Reading{Device: deviceID, Metric: f.Metric, TS: ts, Value: v, Quality: q})
	}
	return out, errors.Join(errs...)
}

// decodeJSON decodes a payload that must be one JSON document, keeping
// numbers as json.Number so that overflow can be told from a value.
func decodeJSON(payload []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("%w: data after the JSON document", ErrMalformed)
	}
	return doc, nil
}

// wholePayload is the raw value of a field without a path: a JSON scalar
// ("23.5", "true", "\"ON\"") or, failing that, the payload as plain text
// (Tasmota's POWER is ON or OFF without quotes).
func wholePayload(payload []byte) (any, bool) {
	text := strings.TrimSpace(string(payload))
	if text == "" {
		return nil, false
	}
	if doc, err := decodeJSON([]byte(text)); err == nil {
		return doc, true
	}
	return text, true
}

// lookup follows a dotted path through objects (by key) and arrays (by
// index). ok is false when any step is missing.
func lookup(doc any, path string) (any, bool) {
	cur := doc
	for _, key := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[key]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// fieldValue converts a raw JSON value to the field's number.
func fieldValue(f *config.MQTTField, raw any) (float64, error) {
	var v float64
	switch r := raw.(type) {
	case json.Number:
		x, err := parseNumber(string(r))
		if err != nil {
			return 0, err
		}
		v = x
	case bool:
		key := strconv.FormatBool(r)
		if m, ok := lookupMap(f.Map, key); ok {
			v = m
		} else if r {
			v = 1
		} else {
			v = 0
		}
	case string:
		if m, ok := lookupMap(f.Map, r); ok {
			v = m
			break
		}
		x, err := parseNumber(strings.TrimSpace(r))
		if errors.Is(err, ErrUnusable) {
			return 0, fmt.Errorf("%w: %q is not a number and not in the field's map", ErrUnusable, truncate(r))
		}
		if err != nil {
			return 0, err
		}
		v = x
	case map[string]any:
		return 0, fmt.Errorf("%w: an object, not a value", ErrUnusable)
	case []any:
		return 0, fmt.Errorf("%w: an array, not a value", ErrUnusable)
	default:
		return 0, fmt.Errorf("%w: unexpected %T", ErrUnusable, raw)
	}
	v = v*config.EffectiveScale(f.Scale) + f.Offset
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%w: %v after scale and offset", ErrValue, v)
	}
	return v, nil
}

// lookupMap finds s in a field's map, exactly or else ignoring case
// ("on" for "ON").
func lookupMap(m map[string]float64, s string) (float64, bool) {
	if len(m) == 0 {
		return 0, false
	}
	if v, ok := m[s]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, s) {
			return v, true
		}
	}
	return 0, false
}

// parseNumber parses a decimal number. NaN, infinities and values beyond
// float64 are ErrValue; anything that is not decimal notation (hex, "1_0",
// words) is ErrUnusable.
func parseNumber(s string) (float64, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: empty string", ErrUnusable)
	}
	lower := strings.ToLower(strings.TrimLeft(s, "+-"))
	if lower == "nan" || lower == "inf" || lower == "infinity" {
		return 0, fmt.Errorf("%w: %q is not finite", ErrValue, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
			return 0, fmt.Errorf("%w: %q is not a decimal number", ErrUnusable, truncate(s))
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if errors.Is(err, strconv.ErrRange) && math.IsInf(v, 0) {
		return 0, fmt.Errorf("%w: %q is out of range", ErrValue, truncate(s))
	}
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%w: %q is not a decimal number", ErrUnusable, truncate(s))
	}
	return v, nil // an underflow reads as 0 or the nearest subnormal
}

// truncate shortens a device-supplied string for an error message.
func truncate(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// Template formats (config.MQTTFormat.Format) with an availability topic.
const (
	FormatTasmota = "tasmota"
	FormatShelly  = "shelly_gen2"
)

// AvailabilityTopic is the topic on which a device of the template announces
// whether it is online, or "" when its format has none:
//
//	tasmota      tele/<topic>/LWT   Online / Offline (retained, Offline is the last will)
//	shelly_gen2  <topic>/online     true / false     (retained, false is the last will)
func AvailabilityTopic(t *config.Template, deviceTopic string) string {
	if t == nil || t.MQTT == nil {
		return ""
	}
	switch t.MQTT.Format {
	case FormatTasmota:
		return "tele/" + deviceTopic + "/LWT"
	case FormatShelly:
		return deviceTopic + "/online"
	}
	return ""
}

// ParseAvailability reads an availability payload: "Online" or "true" is
// online, "Offline" or "false" offline (case and surrounding space do not
// matter). Anything else is ErrAvailability.
func ParseAvailability(payload []byte) (online bool, err error) {
	switch strings.ToLower(strings.TrimSpace(string(payload))) {
	case "online", "true":
		return true, nil
	case "offline", "false":
		return false, nil
	}
	return false, fmt.Errorf("%w: %q (want Online, Offline, true or false)", ErrAvailability, truncate(string(payload)))
}
