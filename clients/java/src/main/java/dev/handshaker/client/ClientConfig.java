package dev.handshaker.client;

import dev.handshaker.v1.ClientOptions;
import io.grpc.Channel;
import java.time.Duration;
import java.util.List;
import java.util.Objects;

/**
 * How a client-role connection handshakes: where the service is, the server name to send and
 * check, ALPN, which trust anchors validate the server, and the client credential to present.
 * Immutable; build one with {@link #builder()} and share it.
 */
public final class ClientConfig {
  private final ServiceSettings service;
  private final String serverName;
  private final List<String> alpnProtocols;
  private final String trustBundle;
  private final String trustAnchorsPem;
  private final String credential;
  private final List<Integer> cipherSuites;
  private final int minVersion;
  private final int maxVersion;
  private final List<Integer> groups;
  private final boolean insecureSkipVerify;
  private final boolean skipHostnameCheck;

  private ClientConfig(Builder b) {
    this.service = b.service;
    this.serverName = b.serverName;
    this.alpnProtocols = List.copyOf(b.alpnProtocols);
    this.trustBundle = b.trustBundle;
    this.trustAnchorsPem = b.trustAnchorsPem;
    this.credential = b.credential;
    this.cipherSuites = List.copyOf(b.cipherSuites);
    ProtocolVersions.check(b.minVersion, b.maxVersion);
    this.minVersion = b.minVersion;
    this.maxVersion = b.maxVersion;
    this.groups = List.copyOf(b.groups);
    this.insecureSkipVerify = b.insecureSkipVerify;
    this.skipHostnameCheck = b.skipHostnameCheck;
  }

  public static Builder builder() {
    return new Builder();
  }

  /** The service address: the one set, else $HANDSHAKER_ADDR, else 127.0.0.1:50051. */
  public String serviceAddress() {
    return service.address();
  }

  /** The server name set explicitly, or null to use the host a socket connects to. */
  public String serverName() {
    return serverName;
  }

  public List<String> alpnProtocols() {
    return alpnProtocols;
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

  /** The start options for a connection to {@code host} (the server name when none is set). */
  ClientOptions toOptions(String host) {
    String name = serverName != null ? serverName : Objects.requireNonNullElse(host, "");
    ClientOptions.Builder options = ClientOptions.newBuilder();
    // RFC 6066 section 3: an IP literal is no HostName. The service then sends no SNI and
    // checks the certificate's iPAddress SAN against expected_ip_address.
    if (isIpLiteral(name)) {
      options.setExpectedIpAddress(name.startsWith("[") ? name.substring(1, name.length() - 1) : name);
    } else {
      options.setServerName(name);
    }
    options
            .addAllAlpnProtocols(alpnProtocols)
            .addAllCipherSuites(cipherSuites)
            .setMinVersion(minVersion)
            .setMaxVersion(maxVersion)
            .addAllGroups(groups)
            .setInsecureSkipVerify(insecureSkipVerify)
            .setSkipHostnameCheck(skipHostnameCheck);
    if (trustAnchorsPem != null) {
      options.setTrustAnchorsPem(trustAnchorsPem);
    } else if (trustBundle != null) {
      options.setTrustBundle(trustBundle);
    }
    if (credential != null) {
      options.setCredential(credential);
    }
    return options.build();
  }

  /** Builds a {@link ClientConfig}; every setting has a default. */
  public static final class Builder {
    private ServiceSettings service = ServiceSettings.defaults();
    private String serverName;
    private List<String> alpnProtocols = List.of();
    private String trustBundle;
    private String trustAnchorsPem;
    private String credential;
    private List<Integer> cipherSuites = List.of();
    private int minVersion;
    private int maxVersion;
    private List<Integer> groups = List.of();
    private boolean insecureSkipVerify;
    private boolean skipHostnameCheck;

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

    /** The SNI to send and the name to check the certificate against; default: the host. */
    public Builder serverName(String serverName) {
      this.serverName = serverName;
      return this;
    }

    /** ALPN protocol names to offer, most preferred first. */
    public Builder alpnProtocols(String... protocols) {
      this.alpnProtocols = List.of(protocols);
      return this;
    }

    /** Validate the server against this keystore trust bundle; default: the service's default. */
    public Builder trustBundle(String name) {
      this.trustBundle = Objects.requireNonNull(name);
      this.trustAnchorsPem = null;
      return this;
    }

    /** Validate the server against these PEM certificates instead of a named bundle. */
    public Builder trustAnchorsPem(String pem) {
      this.trustAnchorsPem = Objects.requireNonNull(pem);
      this.trustBundle = null;
      return this;
    }

    /** The keystore name of the client certificate to present when the server asks for one. */
    public Builder credential(String name) {
      this.credential = name;
      return this;
    }

    /** Cipher suites to offer, most preferred first; default: the service's defaults. */
    public Builder cipherSuites(CipherSuite... suites) {
      this.cipherSuites = CipherSuite.codePoints(suites);
      return this;
    }

    /**
     * The lowest protocol version to offer, "TLSv1.2" or "TLSv1.3"; default (null): TLS 1.2.
     */
    public Builder minVersion(String protocol) {
      this.minVersion = ProtocolVersions.codePoint(protocol);
      return this;
    }

    /**
     * The highest protocol version to offer, "TLSv1.2" or "TLSv1.3"; default (null): TLS 1.3.
     */
    public Builder maxVersion(String protocol) {
      this.maxVersion = ProtocolVersions.codePoint(protocol);
      return this;
    }

    /** Named groups to offer (IANA code points), most preferred first. */
    public Builder groups(Integer... groups) {
      this.groups = List.of(groups);
      return this;
    }

    /** Accept any server certificate. For tests only. */
    public Builder insecureSkipVerify(boolean skip) {
      this.insecureSkipVerify = skip;
      return this;
    }

    /** Validate the chain but not that it names the server name. */
    public Builder skipHostnameCheck(boolean skip) {
      this.skipHostnameCheck = skip;
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

    public ClientConfig build() {
      return new ClientConfig(this);
    }
  }

  private static final java.util.regex.Pattern IPV4 =
      java.util.regex.Pattern.compile("\\d{1,3}(\\.\\d{1,3}){3}");

  /** An IPv4 dotted quad or an IPv6 literal (with or without brackets); never a DNS lookup. */
  static boolean isIpLiteral(String name) {
    return IPV4.matcher(name).matches() || name.contains(":");
  }
}
