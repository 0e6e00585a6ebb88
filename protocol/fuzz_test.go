package protocol

import (
	"bytes"
	"math"
	"reflect"
	"testing"
)

// FuzzDecodeBatch checks that DecodeBatch never panics, that every error it
// returns names a cause, and that whatever it accepts is canonical:
// AppendBatch re-encodes it to the very same bytes, which decode to the same
// value. Each input is also tried with its checksum recomputed, so mutations
// reach the parser behind the CRC.
//
//	go test -run '^$' -fuzz FuzzDecodeBatch -fuzztime 60s ./protocol/
func FuzzDecodeBatch(f *testing.F) {
	for _, g := range loadGoldenBatches(f) {
		f.Add(g.data)
		f.Add(g.data[:len(g.data)/2])
		f.Add(append(bytes.Clone(g.data[:len(g.data)-4]), 0, 0, 0, 0))
	}
	f.Add(validRaw().bytes())
	r := validRaw()
	r.readings[1].value = 0x7ff8000000000000
	f.Add(r.bytes())
	r = validRaw()
	r.seqBytes = []byte{0x80, 0x80, 0x00}
	f.Add(r.bytes())
	r = validRaw()
	r.count = u64(2)
	f.Add(r.bytes())
	f.Add([]byte{1, 0, 0, 0, 0, 0})
	f.Add([]byte{2, 0, 0, 0, 0, 0})
	r = validRaw()
	r.epoch = 0
	f.Add(r.bytes())
	r = validRaw()
	r.epochBytes = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80, 0x01}
	f.Add(r.bytes())

	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodeBatch(t, data)
		if len(data) >= 6 {
			checkDecodeBatch(t, withCRC(data[:len(data)-4]))
		}
	})
}

func checkDecodeBatch(t *testing.T, data []byte) {
	var b Batch
	err := DecodeBatch(data, &b)
	if err != nil {
		if Cause(err) == "other" {
			t.Fatalf("DecodeBatch error %q wraps no sentinel", err)
		}
		return
	}
	encode := AppendBatch
	if b.Epoch == 0 {
		encode = AppendBatchV1
	}
	enc, err := encode(nil, &b)
	if err != nil {
		t.Fatalf("DecodeBatch accepted %x, but AppendBatch rejects the result: %v", data, err)
	}
	if !bytes.Equal(enc, data) {
		t.Fatalf("DecodeBatch accepted a non-canonical payload:\n got %x\nre-encoded %x", data, enc)
	}
	var again Batch
	if err := DecodeBatch(enc, &again); err != nil {
		t.Fatalf("re-encoded payload does not decode: %v", err)
	}
	if diff := sameBatch(&again, &b); diff != "" {
		t.Fatalf("re-encoded payload decodes differently: %s", diff)
	}
}

// FuzzDecodeEvent checks that DecodeEvent never panics, that its errors name
// a cause, and that an accepted event survives EncodeEvent.
func FuzzDecodeEvent(f *testing.F) {
	for _, g := range goldenMessages {
		f.Add(readMessageFixture(f, g.file))
	}
	f.Add([]byte(`{"v":1,"gateway":"gw-1","seq":1,"kind":"x","ts":946684800000,"attrs":{"a":1e308}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEvent(data)
		if err != nil {
			if Cause(err) == "other" {
				t.Fatalf("DecodeEvent error %q wraps no sentinel", err)
			}
			return
		}
		enc := EncodeEvent(e)
		if len(enc) > MaxMessageBytes {
			return // escaping can lengthen a message that was just under the limit
		}
		again, err := DecodeEvent(enc)
		if err != nil {
			t.Fatalf("EncodeEvent(%+v) = %s does not decode: %v", e, enc, err)
		}
		if len(e.Attrs) == 0 {
			e.Attrs = nil // "attrs":{} is omitted on encoding
		}
		e.V = MessageVersion // a version-1 event is re-encoded as version 2
		if !reflect.DeepEqual(again, e) {
			t.Fatalf("event %+v comes back as %+v", e, again)
		}
	})
}

// FuzzDecodeAck checks that DecodeAck never panics, that its errors name a
// cause, and that an accepted ack is canonical: EncodeAck gives back the
// same value, every rejected seq lies outside the committed ranges, and
// Covers agrees with a linear scan of the ranges.
//
//	go test -run '^$' -fuzz FuzzDecodeAck -fuzztime 60s ./protocol/
func FuzzDecodeAck(f *testing.F) {
	for _, g := range goldenMessages {
		f.Add(readMessageFixture(f, g.file))
	}
	f.Add([]byte(`{"v":2,"epoch":1,"committed":[[5,3]],"ts":946684800000}`))
	f.Add([]byte(`{"v":2,"epoch":1,"committed":[[1,2],[3,4]],"ts":946684800000}`))
	f.Add([]byte(`{"v":2,"epoch":9223372036854775808,"committed":[[1,1]],"ts":946684800000}`))
	f.Add([]byte(`{"v":2,"epoch":1,"committed":[[1,18446744073709551615]],"rejected":[{"seq":0,"cause":"x"}],"ts":946684800000}`))
	f.Add([]byte(`{"v":2,"epoch":1,"committed":[[1,2,3]],"ts":946684800000}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := DecodeAck(data)
		if err != nil {
			if Cause(err) == "other" {
				t.Fatalf("DecodeAck error %q wraps no sentinel", err)
			}
			return
		}
		again, err := DecodeAck(EncodeAck(a))
		if err != nil {
			t.Fatalf("EncodeAck(%+v) does not decode: %v", a, err)
		}
		if !reflect.DeepEqual(again, a) {
			t.Fatalf("ack %+v comes back as %+v", a, again)
		}
		covered := func(s uint64) bool {
			for _, r := range a.Committed {
				if r[0] <= s && s <= r[1] {
					return true
				}
			}
			return false
		}
		for _, r := range a.Rejected {
			if covered(r.Seq) {
				t.Fatalf("ack %+v rejects committed seq %d", a, r.Seq)
			}
		}
		for _, r := range a.Committed {
			for _, s := range []uint64{r[0], r[1], r[0] - 1, r[1] + 1} {
				if a.Covers(s) != covered(s) {
					t.Fatalf("ack %+v: Covers(%d) = %v", a, s, a.Covers(s))
				}
			}
		}
	})
}

// FuzzDecodeCommand checks that DecodeCommand never panics, that its errors
// name a cause, and that an accepted command survives EncodeCommand and
// carries a usable value and expiry.
//
//	go test -run '^$' -fuzz FuzzDecodeCommand -fuzztime 60s ./protocol/
func FuzzDecodeCommand(f *testing.F) {
	for _, g := range goldenMessages {
		f.Add(readMessageFixture(f, g.file))
	}
	f.Add([]byte(`{"v":2,"id":"c1","device":"d","point":"p","issued_at":946684800000,"expires_at":946684800001,"by":"s"}`))
	f.Add([]byte(`{"v":2,"id":"c1","device":"d","point":"p","value":1e999,"issued_at":946684800000,"expires_at":946684800001,"by":"s"}`))
	f.Add([]byte(`{"v":2,"id":"c1","device":"d","point":"p","value":-0,"issued_at":946684800000,"expires_at":946684800000,"by":"s"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCommand(data)
		if err != nil {
			if Cause(err) == "other" {
				t.Fatalf("DecodeCommand error %q wraps no sentinel", err)
			}
			return
		}
		if c.ExpiresAt <= c.IssuedAt || math.IsNaN(c.Value) || math.IsInf(c.Value, 0) {
			t.Fatalf("DecodeCommand accepted %+v", c)
		}
		enc := EncodeCommand(c)
		if len(enc) > MaxMessageBytes {
			return
		}
		again, err := DecodeCommand(enc)
		if err != nil {
			t.Fatalf("EncodeCommand(%+v) = %s does not decode: %v", c, enc, err)
		}
		if again != c {
			t.Fatalf("command %+v comes back as %+v", c, again)
		}
	})
}

// FuzzParseTopic checks that ParseTopic never panics, that its errors name a
// cause, and that an accepted topic is the one GatewayRef builds.
func FuzzParseTopic(f *testing.F) {
	g := GatewayRef{Company: "acme", Project: "garden", Gateway: "gw-garden-1"}
	for _, k := range []Kind{KindTelemetry, KindStatus, KindEvents} {
		f.Add(g.Topic(k))
	}
	f.Add(g.DownlinkTopic("config"))
	f.Add(g.DownlinkTopic(DownAck))
	f.Add("plantroom/v1/a/b/c/telemetry")
	f.Add("plantroom/v3/a/b/c/telemetry")
	f.Add("plantroom/v2/+/+/+/telemetry")
	f.Fuzz(func(t *testing.T, topic string) {
		ref, kind, err := ParseTopic(topic)
		if err != nil {
			if Cause(err) == "other" {
				t.Fatalf("ParseTopic error %q wraps no sentinel", err)
			}
			return
		}
		if err := ref.Validate(); err != nil {
			t.Fatalf("ParseTopic(%q) accepted invalid ids: %v", topic, err)
		}
		built := ref.Topic(kind)
		if kind == KindDownlink {
			built = ref.DownlinkTopic(topic[len(ref.Prefix())+len("/down/"):])
		}
		if built != topic {
			t.Fatalf("ParseTopic(%q) = %+v, %q, which builds %q", topic, ref, kind, built)
		}
	})
}
