// Package notify delivers alarm and work-order messages to the outgoing
// webhooks of each project: plain JSON signed with HMAC-SHA256, or the
// markdown messages that WeCom (企业微信) and DingTalk (钉钉) group robots
// accept. Deliveries wait in a bounded queue and are retried with capped
// exponential backoff; what cannot be delivered is counted, never blocks
// the caller.
package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/plantroom/plantroom/config"
)

// Sign is the X-Plantroom-Signature of body: "sha256=" + hex HMAC-SHA256.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// DingTalkSign is DingTalk's robot signature for a timestamp in ms:
// base64(HMAC-SHA256(secret, timestamp + "\n" + secret)).
func DingTalkSign(secret string, timestampMS int64) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d\n%s", timestampMS, secret)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// maxRobotText is the markdown length group robots accept (WeCom: 4096 bytes).
const maxRobotText = 4000

// render builds the body and the URL of a delivery.
func render(t config.Webhook, m Message, now time.Time) ([]byte, string, error) {
	switch t.Format {
	case FormatJSON, "":
		b, err := json.Marshal(m)
		if err != nil {
			return nil, "", fmt.Errorf("cannot encode message %q: %w", m.ID, err)
		}
		return b, t.URL, nil
	case FormatWeCom:
		b, _ := json.Marshal(map[string]any{"msgtype": "markdown", "markdown": map[string]string{"content": truncate(m.Text, maxRobotText)}})
		return b, t.URL, nil
	case FormatDingTalk:
		// DingTalk markdown needs a blank line for a line break.
		text := strings.ReplaceAll(truncate(m.Text, maxRobotText), "\n", "\n\n")
		b, _ := json.Marshal(map[string]any{"msgtype": "markdown", "markdown": map[string]string{"title": m.Title, "text": text}})
		target := t.URL
		if t.Secret != "" {
			u, err := url.Parse(t.URL)
			if err != nil {
				return nil, "", fmt.Errorf("cannot parse webhook url %q: %w", redact(t.URL), err)
			}
			ts := now.UnixMilli()
			q := u.Query()
			q.Set("timestamp", strconv.FormatInt(ts, 10))
			q.Set("sign", DingTalkSign(t.Secret, ts))
			u.RawQuery = q.Encode()
			target = u.String()
		}
		return b, target, nil
	}
	return nil, "", fmt.Errorf("unknown webhook format %q", t.Format)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// redact drops the query (robot URLs carry their access token there).
func redact(raw string) string {
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		return raw[:i] + "?…"
	}
	return raw
}

// Message is one notification. Title and Text are human-readable (Text is
// markdown lines); Data carries the full event for JSON receivers.
type Message struct {
	ID       string    `json:"id"`    // unique per event, for receivers to drop duplicates
	Event    string    `json:"event"` // e.g. "alarm.raise", "alarm.clear", "workorder.assigned"
	Company  string    `json:"company"`
	Project  string    `json:"project"`
	Severity string    `json:"severity,omitempty"`
	Title    string    `json:"title"`
	Text     string    `json:"text"`
	At       time.Time `json:"at"`
	Data     any       `json:"data,omitempty"`
}
