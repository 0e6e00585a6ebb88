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
// scheme or a payload changes incompatibly.
const TopicVersion = "v1"

// Kind is the last level of a gateway topic: what the message carries.
type Kind string

// Message kinds published by a gateway (uplink) and to a gateway (downlink).
const (
	KindTelemetry Kind = "telemetry" // binary telemetry batch (QoS 1)
	KindStatus    Kind = "status"    // JSON gateway status, retained; also the last will
	KindEvents    Kind = "events"    // JSON device or gateway event (QoS 1)
	KindDownlink  Kind = "down"      // reserved prefix for configuration and commands to the gateway
)

// GatewayRef names a gateway by the three ids that make up its topic prefix.
type GatewayRef struct {
	Company string
	Project string
	Gateway string
}

// Prefix is the gateway's own topic prefix, "plantroom/v1/<company>/<project>/<gateway>".
// A gateway may publish and subscribe only below it.
func (g GatewayRef) Prefix() string {
	return TopicRoot + "/" + TopicVersion + "/" + g.Company + "/" + g.Project + "/" + g.Gateway
}

// Topic returns the gateway's topic for the given kind.
func (g GatewayRef) Topic(k Kind) string { return g.Prefix() + "/" + string(k) }

// DownlinkTopic returns a downlink topic for a command or configuration name.
func (g GatewayRef) DownlinkTopic(name string) string {
	return g.Prefix() + "/" + string(KindDownlink) + "/" + name
}

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
// every gateway, e.g. "plantroom/v1/+/+/+/telemetry".
func SubscriptionFilter(k Kind) string {
	return TopicRoot + "/" + TopicVersion + "/+/+/+/" + string(k)
}

// ParseTopic splits an uplink topic into the gateway it belongs to and the
// message kind. Downlink topics ("…/down/<name>") parse with KindDownlink.
func ParseTopic(topic string) (GatewayRef, Kind, error) {
	parts := strings.Split(topic, "/")
	if len(parts) < 6 || parts[0] != TopicRoot {
		return GatewayRef{}, "", fmt.Errorf("%w: %q", ErrTopic, topic)
	}
	if parts[1] != TopicVersion {
		return GatewayRef{}, "", fmt.Errorf("%w: %q in topic %q", ErrTopicVersion, parts[1], topic)
	}
	g := GatewayRef{Company: parts[2], Project: parts[3], Gateway: parts[4]}
	if err := g.Validate(); err != nil {
		return GatewayRef{}, "", fmt.Errorf("%w: %q: %w", ErrTopic, topic, err)
	}
	k := Kind(parts[5])
	switch {
	case k == KindDownlink && len(parts) == 7 && parts[6] != "":
		return g, k, nil
	case len(parts) == 6 && (k == KindTelemetry || k == KindStatus || k == KindEvents):
		return g, k, nil
	}
	return GatewayRef{}, "", fmt.Errorf("%w: unknown kind in %q", ErrTopic, topic)
}
