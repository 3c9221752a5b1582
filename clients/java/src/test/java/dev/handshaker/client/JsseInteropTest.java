package dev.handshaker.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.security.cert.X509Certificate;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLSocket;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The library against stock JSSE peers, with a real handshaker service running the handshakes. */
class JsseInteropTest {
  private static HandshakerService service;
  private static String devCa;

  @BeforeAll
  static void startService() throws Exception {
    service = HandshakerService.start();
    devCa = service.devCaPem();
  }

  @AfterAll
  static void stopService() throws IOException {
    if (service != null) {
      service.close();
    }
  }

  private static SSLContext jsseServerContext() throws Exception {
    return Pki.context(devCa, service.credentialDir("localhost"));
  }

  // ------------------------------------------------------------------ library client, JSSE server

  @ParameterizedTest
  @EnumSource(
      value = CipherSuite.class,
      names = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"})
  void libraryClientFetchesFromJsseServer(CipherSuite suite) throws Exception {
    try (JsseServer<String> server =
        new JsseServer<>(
            jsseServerContext(),
            false,
            new String[] {suite.name()},
            socket -> {
              String head = Http.readHead(socket.getInputStream());
              Http.respond(
                  socket.getOutputStream(),
                  "hello from JSSE, path " + Http.path(head) + ", " + socket.getSession().getCipherSuite());
              return socket.getApplicationProtocol();
            })) {
      ClientConfig config = service.client().trustBundle("dev-ca").alpnProtocols("h2", "http/1.1").build();
      String response;
      try (HandshakerSocket socket = HandshakerSocket.connect("localhost", server.port(), config)) {
        SessionInfo session = socket.session();
        assertEquals(suite, session.cipherSuite());
        assertEquals("TLSv1.3", session.protocol());
        assertEquals("http/1.1", socket.getApplicationProtocol());
        assertTrue(session.peerDnsNames().contains("localhost"), session.peerDnsNames().toString());
        Http.get(socket.getOutputStream(), "localhost", "/hello");
        response = new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      }
      assertTrue(response.startsWith("HTTP/1.1 200 OK\r\n"), response);
      assertTrue(response.endsWith("\r\n\r\nhello from JSSE, path /hello, " + suite.name()), response);
      assertEquals("http/1.1", server.result());
    }
  }

  @Test
  void libraryClientPresentsItsCertificateToJsseServerThatNeedsOne() throws Exception {
    try (JsseServer<X509Certificate> server =
        new JsseServer<>(
            jsseServerContext(),
            true,
            null,
            socket -> {
              Http.readHead(socket.getInputStream());
              Http.respond(socket.getOutputStream(), "hello, client");
              return (X509Certificate) socket.getSession().getPeerCertificates()[0];
            })) {
      ClientConfig config = service.client().trustBundle("dev-ca").credential("client").build();
      String response;
      try (HandshakerSocket socket = HandshakerSocket.connect("localhost", server.port(), config)) {
        Http.get(socket.getOutputStream(), "localhost", "/");
        response = new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      }
      assertTrue(response.endsWith("hello, client"), response);
      X509Certificate clientCert = server.result();
      assertTrue(
          clientCert.getSubjectAlternativeNames().contains(List.of(2, "client")),
          String.valueOf(clientCert.getSubjectAlternativeNames()));
    }
  }

  /** The JSSE server's view of a handshake that the library client failed. */
  private static SSLException peerViewOfFailedValidation() throws Exception {
    try (JsseServer<String> server =
        new JsseServer<>(
            jsseServerContext(),
            false,
            null,
            socket -> {
              socket.startHandshake();
              return "handshake completed";
            })) {
      // Trust only another keystore's CA: the server's chain does not lead to it.
      ClientConfig config = service.client().trustAnchorsPem(service.foreignCaPem()).build();
      HandshakeFailedException failure =
          assertThrows(
              HandshakeFailedException.class,
              () -> HandshakerSocket.connect("localhost", server.port(), config));
      assertEquals(Alert.UNKNOWN_CA, failure.alert());
      assertFalse(failure.sentByPeer());
      assertFalse(failure.reason().isEmpty());
      assertTrue(failure.getMessage().contains("unknown_ca"), failure.getMessage());
      ExecutionException peerSide = assertThrows(ExecutionException.class, server::result);
      // An SSLException, not a connection reset: the alert record reached the peer and was read.
      return assertInstanceOf(SSLException.class, peerSide.getCause());
    }
  }

  @Test
  void failedServerValidationThrowsUnknownCaAndThePeerReadsTheAlert() throws Exception {
    SSLException peerSide = peerViewOfFailedValidation();
    // The alert after ServerHello goes under the client handshake traffic key: a TLS 1.3 server
    // reads nothing else by then.
    assertTrue(peerSide.getMessage().contains("unknown_ca"), peerSide.getMessage());
  }

  @Test
  void unknownTrustBundleIsAServiceErrorNotAHandshakeFailure() throws Exception {
    try (JsseServer<String> server =
        new JsseServer<>(
            jsseServerContext(),
            false,
            null,
            socket -> {
              socket.startHandshake();
              return "handshake completed";
            })) {
      ClientConfig config = service.client().trustBundle("no-such-bundle").build();
      HandshakerServiceException failure =
          assertThrows(
              HandshakerServiceException.class,
              () -> HandshakerSocket.connect("localhost", server.port(), config));
      assertEquals(io.grpc.Status.Code.NOT_FOUND, failure.status().getCode());
      assertThrows(ExecutionException.class, server::result);
    }
  }

  @Test
  void keysUpdateInBothDirectionsWithJsseServer() throws Exception {
    try (JsseServer<String> server =
        new JsseServer<>(
            jsseServerContext(),
            false,
            null,
            socket -> {
              BufferedReader in =
                  new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
              OutputStream out = socket.getOutputStream();
              String first = in.readLine();
              out.write((first.toUpperCase() + "\n").getBytes(StandardCharsets.UTF_8));
              // On an established TLS 1.3 connection JSSE answers startHandshake() with a
              // KeyUpdate that requests one back.
              socket.startHandshake();
              out.write("TWO\n".getBytes(StandardCharsets.UTF_8));
              out.flush();
              String third = in.readLine();
              out.write((third.toUpperCase() + "\n").getBytes(StandardCharsets.UTF_8));
              out.flush();
              return in.readLine();
            })) {
      ClientConfig config = service.client().trustBundle("dev-ca").build();
      try (HandshakerSocket socket = HandshakerSocket.connect("localhost", server.port(), config)) {
        BufferedReader in =
            new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
        OutputStream out = socket.getOutputStream();
        out.write("one\n".getBytes(StandardCharsets.UTF_8));
        assertEquals("ONE", in.readLine());
        // Read under the peer's next keys; ours follow before the next record we send.
        assertEquals("TWO", in.readLine());
        // Ask the peer to update too: its answer is read under its next keys again.
        socket.updateKeys(true);
        out.write("three\n".getBytes(StandardCharsets.UTF_8));
        assertEquals("THREE", in.readLine());
        out.write("done\n".getBytes(StandardCharsets.UTF_8));
        // Received: the peer's requested update and its answer to ours. Sent: our answer and ours.
        assertArrayEquals(new int[] {2, 2}, socket.keyUpdateCounts());
      }
      assertEquals("done", server.result());
    }
  }

  @Test
  void largeWritesAreFragmentedAndEchoedIntact() throws Exception {
    byte[] payload = new byte[200_000];
    new Random(8446).nextBytes(payload);
    try (JsseServer<Integer> server =
        new JsseServer<>(
            jsseServerContext(),
            false,
            null,
            socket -> {
              InputStream in = socket.getInputStream();
              OutputStream out = socket.getOutputStream();
              byte[] buffer = new byte[8192];
              int total = 0;
              for (int n; total < payload.length && (n = in.read(buffer)) > 0; total += n) {
                out.write(buffer, 0, n);
              }
              out.flush();
              return total;
            })) {
      ClientConfig config = service.client().trustBundle("dev-ca").build();
      try (HandshakerSocket socket = HandshakerSocket.connect("localhost", server.port(), config)) {
        Thread writer =
            new Thread(
                () -> {
                  try {
                    socket.getOutputStream().write(payload);
                  } catch (IOException e) {
                    throw new RuntimeException(e);
                  }
                });
        writer.start();
        byte[] echoed = socket.getInputStream().readNBytes(payload.length);
        writer.join(10_000);
        assertArrayEquals(payload, echoed);
      }
      assertEquals(payload.length, server.result());
    }
  }

  // ------------------------------------------------------------------ JSSE client, library server

  @Test
  void httpsUrlConnectionFetchesFromLibraryServer() throws Exception {
    ServerConfig config = service.server().credential("localhost").alpnProtocols("http/1.1").build();
    try (LibraryHttpServer server = new LibraryHttpServer(config)) {
      HttpsURLConnection connection =
          (HttpsURLConnection) new URL("https://localhost:" + server.port() + "/greeting").openConnection();
      connection.setSSLSocketFactory(Pki.context(devCa, null).getSocketFactory());
      assertEquals(200, connection.getResponseCode());
      String suite = connection.getCipherSuite();
      String body;
      try (InputStream in = connection.getInputStream()) {
        body = new String(in.readAllBytes(), StandardCharsets.UTF_8);
      }
      assertEquals("hello from handshaker, path /greeting", body);
      connection.disconnect();
      SessionInfo session = server.served();
      assertEquals(suite, session.cipherSuite().name());
      assertTrue(session.peerCertificates().isEmpty());
    }
  }

  @Test
  void libraryServerRequiringClientCertificatesSeesTheJsseClientIdentity() throws Exception {
    ServerConfig config =
        service
            .server()
            .credential("localhost")
            .clientAuth(ClientAuth.REQUIRED)
            .clientTrustBundle("dev-ca")
            .build();
    try (LibraryHttpServer server = new LibraryHttpServer(config)) {
      HttpsURLConnection connection =
          (HttpsURLConnection) new URL("https://localhost:" + server.port() + "/mtls").openConnection();
      connection.setSSLSocketFactory(Pki.context(devCa, service.credentialDir("client")).getSocketFactory());
      assertEquals(200, connection.getResponseCode());
      try (InputStream in = connection.getInputStream()) {
        assertEquals("hello from handshaker, path /mtls", new String(in.readAllBytes(), StandardCharsets.UTF_8));
      }
      connection.disconnect();
      SessionInfo session = server.served();
      assertEquals(List.of("client"), session.peerDnsNames());
      assertEquals(
          List.of(2, "client"),
          session.peerCertificates().get(0).getSubjectAlternativeNames().iterator().next());
    }
  }

  @Test
  void libraryServerRejectsJsseClientWithoutCertificate() throws Exception {
    ServerConfig config =
        service
            .server()
            .credential("localhost")
            .clientAuth(ClientAuth.REQUIRED)
            .clientTrustBundle("dev-ca")
            .build();
    try (LibraryHttpServer server = new LibraryHttpServer(config)) {
      SSLContext context = Pki.context(devCa, null);
      try (SSLSocket client = (SSLSocket) context.getSocketFactory().createSocket("localhost", server.port())) {
        client.setSoTimeout(20_000);
        // In TLS 1.3 the client's handshake ends before the server has judged its (empty)
        // Certificate: the server's alert arrives on the first read.
        client.startHandshake();
        Http.get(client.getOutputStream(), "localhost", "/");
        SSLException clientSide = assertThrows(SSLException.class, () -> client.getInputStream().read());
        assertTrue(clientSide.getMessage().contains("certificate_required"), clientSide.getMessage());
      }
      ExecutionException serverSide = assertThrows(ExecutionException.class, server::served);
      HandshakeFailedException failure = assertInstanceOf(HandshakeFailedException.class, serverSide.getCause());
      assertEquals(Alert.CERTIFICATE_REQUIRED, failure.alert());
      assertFalse(failure.sentByPeer());
    }
  }
}
