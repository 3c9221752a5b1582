package dev.handshaker.client;

import dev.handshaker.v1.SessionKeys;
import dev.handshaker.v1.TrafficKeys;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.SocketException;
import java.security.GeneralSecurityException;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import javax.crypto.AEADBadTagException;

/**
 * The record layer of an established TLS 1.3 connection (RFC 8446 sections 4.6 and 5): reads and
 * writes application data in protected records, drops NewSessionTicket, answers KeyUpdate, and
 * closes with close_notify. One thread may read while another writes.
 */
final class RecordConnection {
  private static final int HANDSHAKE_NEW_SESSION_TICKET = 4;
  private static final int HANDSHAKE_KEY_UPDATE = 24;
  private static final int UPDATE_NOT_REQUESTED = 0;
  private static final int UPDATE_REQUESTED = 1;
  // A NewSessionTicket carries a ticket of up to 2^16-1 bytes and extensions of up to 2^16-2.
  private static final int MAX_POST_HANDSHAKE_MESSAGE = 1 << 17;
  private static final int ALERT_LEVEL_WARNING = 1;
  private static final int ALERT_LEVEL_FATAL = 2;

  private final InputStream in;
  private final OutputStream out;
  private final Runnable closeTransport;
  private final Runnable closeAfterAlert;
  private final RecordProtection reader;
  private final RecordProtection writer;
  private final int fragmentLimit;

  private final ReentrantLock readLock = new ReentrantLock();
  private final ReentrantLock writeLock = new ReentrantLock();

  // Read side, guarded by readLock.
  private byte[] raw = new byte[RecordProtection.HEADER_LENGTH + RecordProtection.MAX_CIPHERTEXT];
  private int rawStart;
  private int rawEnd;
  private byte[] plaintext = new byte[0];
  private int plaintextPos;
  private final ByteArrayOutputStream handshakeBuffer = new ByteArrayOutputStream();
  private boolean closeNotifyReceived;

  // Write side, guarded by writeLock.
  private boolean closeNotifySent;
  // Set by the reader when the peer sent update_requested after our last KeyUpdate; the writer
  // sends KeyUpdate(update_not_requested) before its next record, whatever its type.
  private volatile boolean keyUpdateOwed;

  private volatile IOException failure;

  // KeyUpdates seen and sent, for observability.
  private final java.util.concurrent.atomic.AtomicInteger keyUpdatesReceived =
      new java.util.concurrent.atomic.AtomicInteger();
  private final java.util.concurrent.atomic.AtomicInteger keyUpdatesSent =
      new java.util.concurrent.atomic.AtomicInteger();

  RecordConnection(
      SessionKeys keys,
      byte[] unconsumed,
      InputStream in,
      OutputStream out,
      Runnable closeTransport,
      Runnable closeAfterAlert)
      throws IOException {
    this.in = in;
    this.out = out;
    this.closeTransport = closeTransport;
    this.closeAfterAlert = closeAfterAlert;
    try {
      CipherSuite suite = CipherSuite.fromCodePoint(keys.getCipherSuite());
      this.reader = protection(suite, keys.getRead());
      this.writer = protection(suite, keys.getWrite());
    } catch (GeneralSecurityException | IllegalArgumentException e) {
      throw new javax.net.ssl.SSLException("cannot use the session keys: " + e.getMessage());
    }
    int limit = keys.getPeerRecordSizeLimit();
    this.fragmentLimit =
        limit <= 0 ? RecordProtection.MAX_PLAINTEXT : Math.min(limit, RecordProtection.MAX_PLAINTEXT);
    if (unconsumed.length > raw.length) {
      raw = new byte[unconsumed.length];
    }
    System.arraycopy(unconsumed, 0, raw, 0, unconsumed.length);
    rawEnd = unconsumed.length;
  }

  private static RecordProtection protection(CipherSuite suite, TrafficKeys keys)
      throws GeneralSecurityException {
    return RecordProtection.of(
        suite,
        keys.getSecret().toByteArray(),
        keys.getKey().toByteArray(),
        keys.getIv().toByteArray(),
        keys.getSequenceNumber());
  }

  int fragmentLimit() {
    return fragmentLimit;
  }

  // ---------------------------------------------------------------- reading

  /** Reads application data; -1 once the peer sent close_notify. */
  int read(byte[] b, int off, int len) throws IOException {
    java.util.Objects.checkFromIndexSize(off, len, b.length);
    readLock.lock();
    try {
      while (plaintextPos == plaintext.length) {
        if (closeNotifyReceived) {
          return -1;
        }
        if (len == 0) {
          return 0;
        }
        readRecord();
      }
      int n = Math.min(len, plaintext.length - plaintextPos);
      System.arraycopy(plaintext, plaintextPos, b, off, n);
      plaintextPos += n;
      return n;
    } finally {
      readLock.unlock();
    }
  }

  int available() {
    if (!readLock.tryLock()) {
      return 0;
    }
    try {
      return plaintext.length - plaintextPos;
    } finally {
      readLock.unlock();
    }
  }

  private void readRecord() throws IOException {
    throwIfFailed();
    if (!fill(RecordProtection.HEADER_LENGTH)) {
      throw fail(new EOFException("the peer closed the connection without close_notify"));
    }
    int type = raw[rawStart] & 0xff;
    int length = ((raw[rawStart + 3] & 0xff) << 8) | (raw[rawStart + 4] & 0xff);
    if (type != RecordProtection.CONTENT_APPLICATION_DATA) {
      // Every record after the handshake is protected; an outer type other than
      // application_data (a stray change_cipher_spec, a plaintext alert) is unexpected.
      throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "unprotected record of type " + type + " after the handshake");
    }
    if (length > RecordProtection.MAX_CIPHERTEXT) {
      throw alertAndFail(Alert.RECORD_OVERFLOW, "record longer than 2^14 + 256 bytes");
    }
    int total = RecordProtection.HEADER_LENGTH + length;
    if (!fill(total)) {
      throw fail(new EOFException("the connection ended inside a record"));
    }
    RecordProtection.Opened opened;
    try {
      opened = reader.open(raw, rawStart, total);
    } catch (AEADBadTagException e) {
      throw alertAndFail(Alert.BAD_RECORD_MAC, "a record did not authenticate");
    } catch (GeneralSecurityException e) {
      throw alertAndFail(Alert.INTERNAL_ERROR, "record decryption: " + e.getClass().getSimpleName());
    } finally {
      rawStart += total;
    }
    // "The presence of padding does not change the overall record size limitations: the full
    // encoded TLSInnerPlaintext MUST NOT exceed 2^14 + 1 octets."
    if (length - CipherSuite.TAG_LENGTH > RecordProtection.MAX_PLAINTEXT + 1) {
      throw alertAndFail(Alert.RECORD_OVERFLOW, "inner plaintext longer than 2^14 + 1 bytes");
    }
    byte[] content = opened.content();
    // "Handshake messages MUST NOT be interleaved with other record types."
    if (opened.contentType() != RecordProtection.CONTENT_HANDSHAKE && handshakeBuffer.size() > 0) {
      throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "a record interrupted a handshake message");
    }
    switch (opened.contentType()) {
      case RecordProtection.CONTENT_APPLICATION_DATA:
        plaintext = content;
        plaintextPos = 0;
        break;
      case RecordProtection.CONTENT_HANDSHAKE:
        if (content.length == 0) {
          throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "zero-length handshake record");
        }
        handshakeBuffer.writeBytes(content);
        handlePostHandshakeMessages();
        break;
      case RecordProtection.CONTENT_ALERT:
        handleAlert(content);
        break;
      default:
        throw alertAndFail(
            Alert.UNEXPECTED_MESSAGE, "protected record of content type " + opened.contentType());
    }
  }

  /** Fills the raw buffer until it holds {@code need} bytes from rawStart; false on EOF. */
  private boolean fill(int need) throws IOException {
    if (rawEnd - rawStart >= need) {
      return true;
    }
    if (raw.length - rawStart < need) {
      int have = rawEnd - rawStart;
      byte[] target = raw.length >= need ? raw : new byte[need];
      System.arraycopy(raw, rawStart, target, 0, have);
      raw = target;
      rawStart = 0;
      rawEnd = have;
    }
    while (rawEnd - rawStart < need) {
      int n;
      try {
        n = in.read(raw, rawEnd, raw.length - rawEnd);
      } catch (java.net.SocketTimeoutException e) {
        // A read timeout leaves the connection usable: the partial record stays buffered.
        throw e;
      } catch (IOException e) {
        throw fail(e);
      }
      if (n < 0) {
        if (rawEnd - rawStart > 0) {
          throw fail(new EOFException("the connection ended inside a record"));
        }
        return false;
      }
      rawEnd += n;
    }
    return true;
  }

  private void handlePostHandshakeMessages() throws IOException {
    byte[] buffered = handshakeBuffer.toByteArray();
    int pos = 0;
    while (buffered.length - pos >= 4) {
      int type = buffered[pos] & 0xff;
      int length =
          ((buffered[pos + 1] & 0xff) << 16) | ((buffered[pos + 2] & 0xff) << 8) | (buffered[pos + 3] & 0xff);
      if (length > MAX_POST_HANDSHAKE_MESSAGE) {
        throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "post-handshake message too long");
      }
      if (buffered.length - pos - 4 < length) {
        break;
      }
      int body = pos + 4;
      pos = body + length;
      switch (type) {
        case HANDSHAKE_NEW_SESSION_TICKET:
          // This client does not resume sessions: the ticket is dropped.
          break;
        case HANDSHAKE_KEY_UPDATE:
          if (length != 1) {
            throw alertAndFail(Alert.DECODE_ERROR, "KeyUpdate body is not one byte");
          }
          // "Implementations MUST enforce that [KeyUpdate] is aligned with a record boundary."
          if (pos != buffered.length) {
            throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "KeyUpdate not at the end of its record");
          }
          receiveKeyUpdate(buffered[body] & 0xff);
          break;
        default:
          throw alertAndFail(Alert.UNEXPECTED_MESSAGE, "post-handshake message of type " + type);
      }
    }
    handshakeBuffer.reset();
    handshakeBuffer.write(buffered, pos, buffered.length - pos);
  }

  private void receiveKeyUpdate(int requestUpdate) throws IOException {
    if (requestUpdate != UPDATE_NOT_REQUESTED && requestUpdate != UPDATE_REQUESTED) {
      throw alertAndFail(Alert.ILLEGAL_PARAMETER, "KeyUpdate request_update is " + requestUpdate);
    }
    try {
      reader.update();
    } catch (GeneralSecurityException e) {
      throw alertAndFail(Alert.INTERNAL_ERROR, "KeyUpdate: " + e.getClass().getSimpleName());
    }
    keyUpdatesReceived.incrementAndGet();
    if (requestUpdate == UPDATE_REQUESTED) {
      // "the receiver MUST send a KeyUpdate of its own with request_update set to
      // update_not_requested prior to sending its next Application Data record". Owed, not sent
      // here: the writer sends it ahead of its next record, so requests that arrive meanwhile
      // share one answer ("an implementation which receives multiple KeyUpdates while it is
      // silent [responds] with a single update"), and a reader never waits on a blocked writer.
      keyUpdateOwed = true;
    }
  }

  private void handleAlert(byte[] content) throws IOException {
    if (content.length != 2) {
      throw alertAndFail(Alert.DECODE_ERROR, "alert record is not two bytes");
    }
    int description = content[1] & 0xff;
    if (description == Alert.CLOSE_NOTIFY) {
      closeNotifyReceived = true;
      return;
    }
    if (description == Alert.USER_CANCELED) {
      // user_canceled is followed by close_notify; nothing to do until then.
      return;
    }
    // RFC 8446 section 6.2: every other alert is fatal, whatever its level says.
    TlsAlertException error = new TlsAlertException(description, "", true);
    failure = error;
    closeTransport.run();
    throw error;
  }

  // ---------------------------------------------------------------- writing

  void write(byte[] b, int off, int len) throws IOException {
    java.util.Objects.checkFromIndexSize(off, len, b.length);
    writeLock.lock();
    try {
      throwIfFailed();
      if (closeNotifySent) {
        throw new SocketException("the TLS connection is closed for writing");
      }
      do {
        int n = Math.min(len, fragmentLimit);
        writeRecord(RecordProtection.CONTENT_APPLICATION_DATA, b, off, n);
        off += n;
        len -= n;
      } while (len > 0);
      out.flush();
    } finally {
      writeLock.unlock();
    }
  }

  /** Sends a KeyUpdate and switches to the next write keys; {@code requestPeer} asks for one back. */
  void updateKeys(boolean requestPeer) throws IOException {
    writeLock.lock();
    try {
      throwIfFailed();
      if (closeNotifySent) {
        throw new SocketException("the TLS connection is closed for writing");
      }
      sendOwedKeyUpdate();
      sendKeyUpdate(requestPeer ? UPDATE_REQUESTED : UPDATE_NOT_REQUESTED);
      out.flush();
    } finally {
      writeLock.unlock();
    }
  }

  /** Our answer to the peer's update_requested, when one is owed; the caller flushes. */
  private void sendOwedKeyUpdate() throws IOException {
    if (keyUpdateOwed && !closeNotifySent) {
      keyUpdateOwed = false;
      sendKeyUpdate(UPDATE_NOT_REQUESTED);
    }
  }

  private void sendKeyUpdate(int requestUpdate) throws IOException {
    // struct { KeyUpdateRequest request_update; } KeyUpdate; behind a 4-byte handshake header.
    byte[] message = {HANDSHAKE_KEY_UPDATE, 0, 0, 1, (byte) requestUpdate};
    sealAndWrite(RecordProtection.CONTENT_HANDSHAKE, message, 0, message.length);
    try {
      writer.update();
    } catch (GeneralSecurityException e) {
      throw fail(new javax.net.ssl.SSLException("KeyUpdate: " + e.getClass().getSimpleName()));
    }
    keyUpdatesSent.incrementAndGet();
  }

  /** Writes one record, after the KeyUpdate we owe the peer if any. */
  private void writeRecord(int contentType, byte[] b, int off, int len) throws IOException {
    sendOwedKeyUpdate();
    sealAndWrite(contentType, b, off, len);
  }

  private void sealAndWrite(int contentType, byte[] b, int off, int len) throws IOException {
    byte[] record;
    try {
      record = writer.seal(contentType, b, off, len);
    } catch (GeneralSecurityException e) {
      throw fail(new javax.net.ssl.SSLException("record encryption: " + e.getClass().getSimpleName()));
    }
    try {
      out.write(record);
    } catch (IOException e) {
      throw fail(e);
    }
  }

  /** Sends close_notify once; the transport stays open for reading the peer's. */
  void closeOutbound() throws IOException {
    // A writer blocked on a peer that does not read must not hold close() forever.
    boolean locked;
    try {
      locked = writeLock.tryLock(2, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      locked = false;
    }
    if (!locked) {
      return;
    }
    try {
      if (closeNotifySent || failure != null) {
        return;
      }
      sendOwedKeyUpdate();
      closeNotifySent = true;
      byte[] alert = {ALERT_LEVEL_WARNING, Alert.CLOSE_NOTIFY};
      sealAndWrite(RecordProtection.CONTENT_ALERT, alert, 0, alert.length);
      out.flush();
    } finally {
      writeLock.unlock();
    }
  }

  int keyUpdatesReceived() {
    return keyUpdatesReceived.get();
  }

  int keyUpdatesSent() {
    return keyUpdatesSent.get();
  }

  boolean closeNotifyReceived() {
    return closeNotifyReceived;
  }

  // ---------------------------------------------------------------- failures

  private void throwIfFailed() throws IOException {
    IOException error = failure;
    if (error != null) {
      throw new SocketException("the TLS connection failed earlier: " + error.getMessage());
    }
  }

  private IOException fail(IOException error) {
    if (failure == null) {
      failure = error;
    }
    closeTransport.run();
    return error;
  }

  /** Sends a fatal alert (best effort), closes the transport and returns the error to throw. */
  private TlsAlertException alertAndFail(int description, String reason) {
    TlsAlertException error = new TlsAlertException(description, reason, false);
    boolean locked = false;
    boolean sent = false;
    try {
      locked = writeLock.tryLock(1, TimeUnit.SECONDS);
      if (locked && failure == null && !closeNotifySent) {
        byte[] alert = {ALERT_LEVEL_FATAL, (byte) description};
        writeRecord(RecordProtection.CONTENT_ALERT, alert, 0, alert.length);
        out.flush();
        sent = true;
      }
    } catch (IOException e) {
      // The alert is a courtesy; the connection fails either way.
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      if (locked) {
        writeLock.unlock();
      }
    }
    if (failure == null) {
      failure = error;
    }
    (sent ? closeAfterAlert : closeTransport).run();
    Arrays.fill(plaintext, (byte) 0);
    return error;
  }
}
