package dev.handshaker.client.keyless;

import dev.handshaker.v1.ValidateChainRequest;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * The name a certificate chain's leaf must carry: a DNS host name, an IP literal or a SPIFFE ID;
 * or none (only for client chains, which the service checks against a name when one is given).
 */
public final class PeerName {
  private static final Pattern IPV4 = Pattern.compile("\\d{1,3}(\\.\\d{1,3}){3}");
  private static final PeerName NONE = new PeerName(null, null);

  private final Kind kind;
  private final String value;

  private enum Kind {
    DNS,
    IP,
    SPIFFE
  }

  private PeerName(Kind kind, String value) {
    this.kind = kind;
    this.value = value;
  }

  public static PeerName dns(String name) {
    return new PeerName(Kind.DNS, requireText(name));
  }

  public static PeerName ip(String literal) {
    return new PeerName(Kind.IP, requireText(literal));
  }

  public static PeerName spiffe(String id) {
    return new PeerName(Kind.SPIFFE, requireText(id));
  }

  public static PeerName none() {
    return NONE;
  }

  /**
   * A host as a socket names it: an IPv4 or IPv6 literal (brackets allowed) becomes {@link #ip},
   * anything else {@link #dns}. Decided by syntax only, so no name is ever resolved here.
   */
  public static PeerName host(String host) {
    String h = requireText(host);
    if (h.startsWith("[") && h.endsWith("]")) {
      return ip(h.substring(1, h.length() - 1));
    }
    if (h.indexOf(':') >= 0 || IPV4.matcher(h).matches()) {
      return ip(h);
    }
    return dns(h);
  }

  public boolean isNone() {
    return kind == null;
  }

  void applyTo(ValidateChainRequest.Builder request) {
    if (kind == null) {
      return;
    }
    switch (kind) {
      case DNS:
        request.setDnsName(value);
        break;
      case IP:
        request.setIpAddress(value);
        break;
      case SPIFFE:
        request.setSpiffeId(value);
        break;
    }
  }

  private static String requireText(String s) {
    if (Objects.requireNonNull(s).isBlank()) {
      throw new IllegalArgumentException("a peer name must not be empty");
    }
    return s;
  }

  @Override
  public String toString() {
    return kind == null ? "(no name)" : kind.name().toLowerCase() + ":" + value;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof PeerName && ((PeerName) o).kind == kind && Objects.equals(((PeerName) o).value, value);
  }

  @Override
  public int hashCode() {
    return Objects.hash(kind, value);
  }
}
