package handshaker

// The gRPC channels to the service, shared by address or owned by a Config,
// and the multiplexer of each channel.

import (
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"weak"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/handshaker/handshaker/clients/go/gen/handshaker/v1"
)

// channelKey identifies a gRPC channel to the service: shared by address for
// Configs without DialOptions, else owned by one Config and closed once that
// Config is garbage.
type channelKey struct {
	addr   string
	config weak.Pointer[Config]
}

// muxKey identifies the channel a multiplexer runs on: one this package
// opened (channel), or a caller's Config.Service (service). A Service value
// that cannot be a map key gets a multiplexer per Config (owner).
type muxKey struct {
	channel channelKey
	service grpc.ClientConnInterface
	owner   weak.Pointer[Config]
}

var channels = struct {
	sync.Mutex
	byKey map[channelKey]*grpc.ClientConn
	muxes map[muxKey]*multiplexer
}{byKey: map[channelKey]*grpc.ClientConn{}, muxes: map[muxKey]*multiplexer{}}

func (c *Config) handshakerClient() (pb.HandshakerClient, error) {
	cc, _, err := c.channel()
	if err != nil {
		return nil, err
	}
	return pb.NewHandshakerClient(cc), nil
}

// channel returns the gRPC channel of c and the key of its multiplexer.
func (c *Config) channel() (grpc.ClientConnInterface, muxKey, error) {
	if c.Service != nil {
		if reflect.ValueOf(c.Service).Comparable() {
			return c.Service, muxKey{service: c.Service}, nil
		}
		return c.Service, muxKey{owner: weak.Make(c)}, nil
	}
	key := channelKey{addr: c.serviceAddr()}
	if len(c.DialOptions) > 0 {
		key.config = weak.Make(c)
	}
	channels.Lock()
	defer channels.Unlock()
	if cc, ok := channels.byKey[key]; ok {
		return cc, muxKey{channel: key}, nil
	}
	// The service listens on loopback or a unix socket unless it was given
	// its own TLS; a transport credential in DialOptions replaces this one.
	options := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, c.DialOptions...)
	cc, err := grpc.NewClient(key.addr, options...)
	if err != nil {
		return nil, muxKey{}, fmt.Errorf("handshaker: service %s: %w", key.addr, err)
	}
	channels.byKey[key] = cc
	if len(c.DialOptions) > 0 {
		runtime.AddCleanup(c, closeChannel, key)
	}
	return cc, muxKey{channel: key}, nil
}

// multiplexer returns the multiplexer of c's channel, creating it on first use.
func (c *Config) multiplexer() (*multiplexer, error) {
	cc, key, err := c.channel()
	if err != nil {
		return nil, err
	}
	channels.Lock()
	defer channels.Unlock()
	if m, ok := channels.muxes[key]; ok {
		return m, nil
	}
	m := newMultiplexer(cc, key)
	channels.muxes[key] = m
	if key.owner != (weak.Pointer[Config]{}) {
		runtime.AddCleanup(c, closeMultiplexer, key)
	}
	return m, nil
}

func closeChannel(key channelKey) {
	closeMultiplexer(muxKey{channel: key})
	channels.Lock()
	cc := channels.byKey[key]
	delete(channels.byKey, key)
	channels.Unlock()
	if cc != nil {
		_ = cc.Close()
	}
}

func closeMultiplexer(key muxKey) {
	channels.Lock()
	m := channels.muxes[key]
	delete(channels.muxes, key)
	channels.Unlock()
	if m != nil {
		m.close()
	}
}

// forgetMultiplexer drops m from the cache (its channel was shut down), so
// that the next use of the key starts afresh.
func forgetMultiplexer(m *multiplexer) {
	m.close()
	channels.Lock()
	if channels.muxes[m.key] == m {
		delete(channels.muxes, m.key)
	}
	channels.Unlock()
}
