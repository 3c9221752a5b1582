package dev.handshaker.client;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.handshaker.v1.ClientOptions;
import org.junit.jupiter.api.Test;

/** The start options a connection sends: an IP literal is never a server_name (RFC 6066). */
class ClientOptionsTest {
  private static ClientOptions optionsFor(String host) {
    return ClientConfig.builder().serviceAddress("127.0.0.1:1").build().toOptions(host);
  }

  @Test
  void aHostNameIsTheServerName() {
    ClientOptions options = optionsFor("example.test");
    assertEquals("example.test", options.getServerName());
    assertEquals("", options.getExpectedIpAddress());
  }

  @Test
  void anIpv4LiteralIsTheExpectedIpAddress() {
    ClientOptions options = optionsFor("127.0.0.1");
    assertEquals("", options.getServerName());
    assertEquals("127.0.0.1", options.getExpectedIpAddress());
  }

  @Test
  void anIpv6LiteralLosesItsBrackets() {
    assertEquals("::1", optionsFor("[::1]").getExpectedIpAddress());
    assertEquals("::1", optionsFor("::1").getExpectedIpAddress());
  }
}
