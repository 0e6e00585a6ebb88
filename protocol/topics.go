// Package protocol is the contract between an edge gateway and the Plantroom
// cloud: the MQTT topic scheme and the payload codecs. It is pure Go with no
// I/O and no logging; README.md in this folder is the specification.
package protocol

import (
	"fmt"
	"strings"
)

// TopicRoot is the first topic level of every Plantroom topic.
const TopicRoot = "plantroom"

// TopicVersion is the second topic level; it changes only when the topic
// scheme or a payload changes incompatibly. TopicVersionV1 is the level of
// protocol version 1, whose gateways a receiver may still accept during a
// migration window (README.md, section 8).
const (
	TopicVersion   = "v2"
	TopicVersionV1 = "v1"
)

// Kind is the last level of a gateway topic: what the message carries.
type Kind string

// Message kinds published by a gateway (uplink) and to a gateway (downlink).
const (
	KindTelemetry Kind = "telemetry" // binary telemetry batch (QoS 1)
	KindStatus    Kind = "status"    // JSON gateway status, retained; also the last will
	KindEvents    Kind = "events"    // JSON device or gateway event (QoS 1)
	KindDownlink  Kind = "down"      // prefix of the messages to the gateway: down/<name>
)

// Downlink message names (the level after "down/").
const (
	DownAck = "ack" // commit acknowledgement (Ack), cloud → gateway, QoS 1
	DownCmd = "cmd" // command (Command), cloud → gateway, QoS 1
)

// GatewayRef names a gateway by the three ids that make up its topic prefix.
type GatewayRef struct {
	Company string
	Project string
	Gateway string
}

// Prefix is the gateway's own topic prefix, "plantroom/v2/<company>/<project>/<gateway>".
// A gateway may publish and subscribe only below it.
func (g GatewayRef) Prefix() string { return g.prefix(TopicVersion) }

// PrefixV1 is the gateway's prefix under protocol version 1.
func (g GatewayRef) PrefixV1() string { return g.prefix(TopicVersionV1) }

func (g GatewayRef) prefix(version string) string {
	return TopicRoot + "/" + version + "/" + g.Company + "/" + g.Project + "/" + g.Gateway
}

// Topic returns the gateway's topic for the given kind.
func (g GatewayRef) Topic(k Kind) string { return g.Prefix() + "/" + string(k) }

// DownlinkTopic returns a downlink topic for a command or configuration name.
func (g GatewayRef) DownlinkTopic(name string) string {
	return g.Prefix() + "/" + string(KindDownlink) + "/" + name
}

// DownlinkFilter is the filter a gateway subscribes with to receive its
// downlink messages, "plantroom/v2/<company>/<project>/<gateway>/down/#".
func (g GatewayRef) DownlinkFilter() string { return g.Prefix() + "/" + string(KindDownlink) + "/#" }

// Validate checks every id against the id rules.
func (g GatewayRef) Validate() error {
	for _, f := range []struct{ name, v string }{{"company", g.Company}, {"project", g.Project}, {"gateway", g.Gateway}} {
		if err := CheckID(f.v); err != nil {
			return fmt.Errorf("invalid %s id: %w", f.name, err)
		}
	}
	return nil
}

// SubscriptionFilter returns the topic filter that matches the given kind for
// every gateway, e.g. "plantroom/v2/+/+/+/telemetry".
func SubscriptionFilter(k Kind) string {
	return TopicRoot + "/" + TopicVersion + "/+/+/+/" + string(k)
}

// SubscriptionFilterV1 is SubscriptionFilter for version-1 gateways.
func SubscriptionFilterV1(k Kind) string {
	return TopicRoot + "/" + TopicVersionV1 + "/+/+/+/" + string(k)
}

// ParseTopic splits a version-2 topic into the gateway it belongs to and
// the message kind. Downlink topics ("…/down/<name>") parse with
// KindDownlink. A version-1 topic is rejected with ErrTopicVersion; a
// receiver that still accepts version-1 gateways uses ParseAnyTopic.
func ParseTopic(topic string) (GatewayRef, Kind, error) {
	ref, kind, version, err := ParseAnyTopic(topic)
	if err == nil && version != TopicVersion {
		return GatewayRef{}, "", fmt.Errorf("%w: %q in topic %q", ErrTopicVersion, version, topic)
	}
	return ref, kind, err
}

// ParseAnyTopic is ParseTopic for version-2 and version-1 topics; it also
// returns the topic's version level (TopicVersion or TopicVersionV1).
func ParseAnyTopic(topic string) (GatewayRef, Kind, string, error) {
	parts := strings.Split(topic, "/")
	if len(parts) < 6 || parts[0] != TopicRoot {
		return GatewayRef{}, "", "", fmt.Errorf("%w: %q", ErrTopic, topic)
	}
	if parts[1] != TopicVersion && parts[1] != TopicVersionV1 {
		return GatewayRef{}, "", "", fmt.Errorf("%w: %q in topic %q", ErrTopicVersion, parts[1], topic)
	}
	g := GatewayRef{Company: parts[2], Project: parts[3], Gateway: parts[4]}
	if err := g.Validate(); err != nil {
		return GatewayRef{}, "", "", fmt.Errorf("%w: %q: %w", ErrTopic, topic, err)
	}
	k := Kind(parts[5])
	switch {
	case k == KindDownlink && len(parts) == 7 && parts[6] != "":
		return g, k, parts[1], nil
	case len(parts) == 6 && (k == KindTelemetry || k == KindStatus || k == KindEvents):
		return g, k, parts[1], nil
	}
	return GatewayRef{}, "", "", fmt.Errorf("%w: unknown kind in %q", ErrTopic, topic)
}
