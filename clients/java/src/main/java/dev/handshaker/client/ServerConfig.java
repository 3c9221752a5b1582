package dev.handshaker.client;

import dev.handshaker.v1.ServerOptions;
import io.grpc.Channel;
import java.time.Duration;
import java.util.List;
import java.util.Objects;

/**
 * How a server-role connection handshakes: where the service is, the keystore credential to
 * serve, ALPN, and whether (and against which trust anchors) client certificates are checked.
 * Immutable; build one with {@link #builder()} and share it.
 */
public final class ServerConfig {
  private final ServiceSettings service;
  private final String credential;
  private final List<String> alpnProtocols;
  private final ClientAuth clientAuth;
  private final String clientTrustBundle;
  private final String clientTrustAnchorsPem;
  private final List<Integer> cipherSuites;
  private final int minVersion;
  private final int maxVersion;

  private ServerConfig(Builder b) {
    if (b.clientAuth != ClientAuth.NONE
        && b.clientTrustBundle == null
        && b.clientTrustAnchorsPem == null) {
      throw new IllegalArgumentException(
          "client auth " + b.clientAuth + " needs a client trust bundle or client trust anchors");
    }
    this.service = b.service;
    this.credential = b.credential;
    this.alpnProtocols = List.copyOf(b.alpnProtocols);
    this.clientAuth = b.clientAuth;
    this.clientTrustBundle = b.clientTrustBundle;
    this.clientTrustAnchorsPem = b.clientTrustAnchorsPem;
    this.cipherSuites = List.copyOf(b.cipherSuites);
    ProtocolVersions.check(b.minVersion, b.maxVersion);
    this.minVersion = b.minVersion;
    this.maxVersion = b.maxVersion;
  }

  public static Builder builder() {
    return new Builder();
  }

  public String serviceAddress() {
    return service.address();
  }

  public String credential() {
    return credential;
  }

  public List<String> alpnProtocols() {
    return alpnProtocols;
  }

  public ClientAuth clientAuth() {
    return clientAuth;
  }

  public Duration handshakeTimeout() {
    return service.handshakeTimeout();
  }

  /** True when handshakes run on the channel's shared Multiplex streams; see {@link Builder}. */
  public boolean multiplex() {
    return service.multiplex();
  }

  ServiceSettings service() {
    return service;
  }

  ServerOptions toOptions() {
    ServerOptions.Builder options =
        ServerOptions.newBuilder()
            .addAllAlpnProtocols(alpnProtocols)
            .setClientAuth(clientAuth.toProto())
            .addAllCipherSuites(cipherSuites)
            .setMinVersion(minVersion)
            .setMaxVersion(maxVersion);
    if (credential != null) {
      options.setCredential(credential);
    }
    if (clientTrustAnchorsPem != null) {
      options.setClientTrustAnchorsPem(clientTrustAnchorsPem);
    } else if (clientTrustBundle != null) {
      options.setClientTrustBundle(clientTrustBundle);
    }
    return options.build();
  }

  /** Builds a {@link ServerConfig}; every setting has a default. */
  public static final class Builder {
    private ServiceSettings service = ServiceSettings.defaults();
    private String credential;
    private List<String> alpnProtocols = List.of();
    private ClientAuth clientAuth = ClientAuth.NONE;
    private String clientTrustBundle;
    private String clientTrustAnchorsPem;
    private List<Integer> cipherSuites = List.of();
    private int minVersion;
    private int maxVersion;

    private Builder() {}

    /** The service address, "host:port" or any gRPC target; a plaintext channel is shared. */
    public Builder serviceAddress(String address) {
      this.service = service.withAddress(address);
      return this;
    }

    /** A gRPC channel to the service (e.g. one with TLS), instead of {@link #serviceAddress}. */
    public Builder channel(Channel channel) {
      this.service = service.withChannel(channel);
      return this;
    }

    /**
     * The keystore name of the credential to serve. Default: the service picks one by the
     * ClientHello's server_name.
     */
    public Builder credential(String name) {
      this.credential = name;
      return this;
    }

    /** ALPN protocol names this server speaks, most preferred first. */
    public Builder alpnProtocols(String... protocols) {
      this.alpnProtocols = List.of(protocols);
      return this;
    }

    /** Ask for client certificates; OPTIONAL and REQUIRED need client trust anchors. */
    public Builder clientAuth(ClientAuth clientAuth) {
      this.clientAuth = Objects.requireNonNull(clientAuth);
      return this;
    }

    /** Validate client certificates against this keystore trust bundle. */
    public Builder clientTrustBundle(String name) {
      this.clientTrustBundle = Objects.requireNonNull(name);
      this.clientTrustAnchorsPem = null;
      return this;
    }

    /** Validate client certificates against these PEM certificates. */
    public Builder clientTrustAnchorsPem(String pem) {
      this.clientTrustAnchorsPem = Objects.requireNonNull(pem);
      this.clientTrustBundle = null;
      return this;
    }

    /** Cipher suites to accept, most preferred first; default: the service's defaults. */
    public Builder cipherSuites(CipherSuite... suites) {
      this.cipherSuites = CipherSuite.codePoints(suites);
      return this;
    }

    /**
     * The lowest protocol version to accept, "TLSv1.2" or "TLSv1.3"; default (null): TLS 1.2.
     */
    public Builder minVersion(String protocol) {
      this.minVersion = ProtocolVersions.codePoint(protocol);
      return this;
    }

    /**
     * The highest protocol version to accept, "TLSv1.2" or "TLSv1.3"; default (null): TLS 1.3.
     */
    public Builder maxVersion(String protocol) {
      this.maxVersion = ProtocolVersions.codePoint(protocol);
      return this;
    }

    /** The longest a handshake may take, peer and service together; default 30 s. */
    public Builder handshakeTimeout(Duration timeout) {
      this.service = service.withHandshakeTimeout(timeout);
      return this;
    }

    /**
     * Run handshakes on the service's Multiplex RPC instead of a Handshake stream each (default
     * off). The handshakes of all sockets whose configs use the same service channel (the same
     * {@link #serviceAddress}, or the same {@link #channel}) share two long-lived Multiplex
     * streams; the frames of different handshakes that are ready together go to the service in
     * one message, and their answers come back in one, which cuts the service's gRPC cost per
     * handshake under load. Recommended for servers and proxies that handle many connections.
     *
     * <p>Results and errors are as without it: a connection the service refuses fails with a
     * {@link HandshakerServiceException} carrying the status code, and a handshake that ends on
     * this side (timeout, peer error) is aborted in the service. When a stream breaks, the
     * handshakes on it fail with its gRPC status and the next handshake opens a new stream. The
     * streams end with their channel: a caller's {@link io.grpc.ManagedChannel} that is shut
     * down ends each stream once the handshakes on it have ended.
     */
    public Builder multiplex(boolean multiplex) {
      this.service = service.withMultiplex(multiplex);
      return this;
    }

    public ServerConfig build() {
      return new ServerConfig(this);
    }
  }
}
