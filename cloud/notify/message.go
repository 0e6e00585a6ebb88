// Package notify delivers alarm and work-order messages to the outgoing
// webhooks of each project: plain JSON signed with HMAC-SHA256, or the
// markdown messages that WeCom (企业微信) and DingTalk (钉钉) group robots
// accept. Deliveries wait in a bounded queue and are retried with capped
// exponential backoff; what cannot be delivered is counted, never blocks
// the caller.
package notify

import "time"

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
