/**
 * The netlink message codec: pure functions that turn requests into the
 * kernel's bytes and the kernel's answers back into values, with no
 * socket in sight (src/net/rtnl.ts owns the socket), so it is unit-tested
 * without root.
 *
 * Layout (netlink(7), rtnetlink(7); all integers in host order, which is
 * little-endian on every machine dokrust runs on):
 *
 *   message := nlmsghdr(16) body(padded to 4) attr*
 *   nlmsghdr := u32 len, u16 type, u16 flags, u32 seq, u32 pid
 *   attr     := u16 len, u16 type, value (padded to 4)   (rtattr = nlattr)
 *
 * `len` of a message or an attribute counts its header and its value but
 * not the trailing padding.  A nested attribute's value is itself a list
 * of attributes (NLA_F_NESTED marks it where the kernel insists).
 */

/** Message types of the netlink core (netlink.h). */
export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;

/** Header flags (netlink.h). */
export const NLM_F = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  ECHO: 0x8,
  DUMP_INTR: 0x10,
  // GET requests
  DUMP: 0x300,
  // NEW requests
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  // ACK messages
  CAPPED: 0x100,
  ACK_TLVS: 0x200,
} as const;

/** Attributes of an extended acknowledgement (enum nlmsgerr_attrs). */
export const NLMSGERR_ATTR = { MSG: 1, OFFS: 2, COOKIE: 3 } as const;

/** rtnetlink message types (rtnetlink.h). */
export const RTM = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  SETLINK: 19,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
} as const;

/** Link attributes (if_link.h). */
export const IFLA = {
  ADDRESS: 1,
  IFNAME: 3,
  MTU: 4,
  LINK: 5,
  MASTER: 10,
  OPERSTATE: 16,
  LINKINFO: 18,
  NET_NS_PID: 19,
  NET_NS_FD: 28,
  LINK_NETNSID: 37,
} as const;
/** Attributes nested in IFLA_LINKINFO. */
export const IFLA_INFO = { KIND: 1, DATA: 2 } as const;
/** Attributes nested in a veth's IFLA_INFO_DATA (veth.h). */
export const VETH_INFO_PEER = 1;

/** Address attributes (if_addr.h). */
export const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, BROADCAST: 4 } as const;
/** Route attributes (rtnetlink.h). */
export const RTA = { DST: 1, SRC: 2, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, TABLE: 15 } as const;

export const AF_INET = 2;
export const AF_INET6 = 10;
export const IFF_UP = 0x1;
export const RT_TABLE_MAIN = 254;
export const RTPROT = { KERNEL: 2, BOOT: 3, STATIC: 4 } as const;
export const RT_SCOPE = { UNIVERSE: 0, LINK: 253, HOST: 254 } as const;
export const RTN_UNICAST = 1;
export const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;

const HEADER = 16;
const ATTR_HEADER = 4;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Round up to netlink's 4-byte alignment. */
export function align(n: number): number {
  return (n + 3) & ~3;
}

// ---------------------------------------------------------------------------
// Attributes.

/** An attribute to encode: raw bytes, or nested attributes. */
export interface Attr {
  type: number;
  value: Uint8Array | Attr[];
}

/** A string attribute, NUL-terminated as the kernel expects. */
export function strAttr(type: number, text: string): Attr {
  const bytes = encoder.encode(text);
  const value = new Uint8Array(bytes.length + 1);
  value.set(bytes);
  return { type, value };
}

/** A u32 attribute. */
export function u32Attr(type: number, n: number): Attr {
  const value = new Uint8Array(4);
  new DataView(value.buffer).setUint32(0, n >>> 0, true);
  return { type, value };
}

/** An s32 attribute (file descriptors, pids). */
export function s32Attr(type: number, n: number): Attr {
  const value = new Uint8Array(4);
  new DataView(value.buffer).setInt32(0, n, true);
  return { type, value };
}

/** A nested attribute, flagged NLA_F_NESTED. */
export function nestAttr(type: number, children: Attr[]): Attr {
  return { type: type | NLA_F_NESTED, value: children };
}

function attrSize(attr: Attr): number {
  return ATTR_HEADER + (attr.value instanceof Uint8Array ? attr.value.length : attrsSize(attr.value));
}

function attrsSize(attrs: readonly Attr[]): number {
  return attrs.reduce((sum, a) => sum + align(attrSize(a)), 0);
}

function writeAttrs(out: Uint8Array, offset: number, attrs: readonly Attr[]): number {
  const view = new DataView(out.buffer, out.byteOffset);
  for (const attr of attrs) {
    const size = attrSize(attr);
    view.setUint16(offset, size, true);
    view.setUint16(offset + 2, attr.type, true);
    if (attr.value instanceof Uint8Array) out.set(attr.value, offset + ATTR_HEADER);
    else writeAttrs(out, offset + ATTR_HEADER, attr.value);
    offset += align(size);
  }
  return offset;
}

/** Encode attributes alone (the value of a nest, or a message's tail). */
export function encodeAttrs(attrs: readonly Attr[]): Uint8Array {
  const out = new Uint8Array(attrsSize(attrs));
  writeAttrs(out, 0, attrs);
  return out;
}

/** A decoded attribute: its type (flags stripped) and its value. */
export interface RawAttr {
  type: number;
  nested: boolean;
  value: Uint8Array;
}

/** Decode a run of attributes; a truncated one ends the run. */
export function parseAttrs(bytes: Uint8Array): RawAttr[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const attrs: RawAttr[] = [];
  let offset = 0;
  while (offset + ATTR_HEADER <= bytes.length) {
    const len = view.getUint16(offset, true);
    const type = view.getUint16(offset + 2, true);
    if (len < ATTR_HEADER || offset + len > bytes.length) break;
    attrs.push({ type: type & NLA_TYPE_MASK, nested: (type & NLA_F_NESTED) !== 0, value: bytes.subarray(offset + ATTR_HEADER, offset + len) });
    offset += align(len);
  }
  return attrs;
}

/** Attributes by type (the last one wins, as in the kernel's nla_parse). */
export function attrMap(bytes: Uint8Array): Map<number, Uint8Array> {
  return new Map(parseAttrs(bytes).map((a) => [a.type, a.value]));
}

/** A string attribute's text, without its NUL. */
export function attrString(value: Uint8Array | undefined): string | undefined {
  if (!value) return undefined;
  const end = value.indexOf(0);
  return decoder.decode(end < 0 ? value : value.subarray(0, end));
}

/** A u32 attribute's value. */
export function attrU32(value: Uint8Array | undefined): number | undefined {
  if (!value || value.length < 4) return undefined;
  return new DataView(value.buffer, value.byteOffset, 4).getUint32(0, true);
}

// ---------------------------------------------------------------------------
// Messages.

/** A message to encode. */
export interface Request {
  type: number;
  flags: number;
  seq: number;
  /** Port id of the sender; 0 lets the kernel fill it in. */
  pid?: number;
  /** The family header (ifinfomsg, ifaddrmsg, rtmsg ...). */
  body: Uint8Array;
  attrs?: readonly Attr[];
}

/** Encode one message: header, family header, attributes. */
export function encodeMessage(req: Request): Uint8Array {
  const attrs = req.attrs ?? [];
  const bodyEnd = HEADER + align(req.body.length);
  const length = bodyEnd + attrsSize(attrs);
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  view.setUint32(0, length, true);
  view.setUint16(4, req.type, true);
  view.setUint16(6, req.flags, true);
  view.setUint32(8, req.seq >>> 0, true);
  view.setUint32(12, req.pid ?? 0, true);
  out.set(req.body, HEADER);
  writeAttrs(out, bodyEnd, attrs);
  return out;
}

/** A decoded message: header fields and the bytes after the header. */
export interface Message {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Uint8Array;
}

/** Split a datagram into its messages. */
export function parseMessages(bytes: Uint8Array): Message[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const messages: Message[] = [];
  let offset = 0;
  while (offset + HEADER <= bytes.length) {
    const len = view.getUint32(offset, true);
    if (len < HEADER || offset + len > bytes.length) throw new Error(`netlink: truncated message at byte ${offset} (length ${len})`);
    messages.push({
      type: view.getUint16(offset + 4, true),
      flags: view.getUint16(offset + 6, true),
      seq: view.getUint32(offset + 8, true),
      pid: view.getUint32(offset + 12, true),
      payload: bytes.subarray(offset + HEADER, offset + len),
    });
    offset += align(len);
  }
  return messages;
}

/** The attributes that follow a family header of `size` bytes. */
export function messageAttrs(message: Message, size: number): Map<number, Uint8Array> {
  return attrMap(message.payload.subarray(align(size)));
}

/** What an NLMSG_ERROR message says: errno 0 is an acknowledgement. */
export interface Ack {
  /** A positive errno, or 0 for success. */
  errno: number;
  /** Sequence number of the request it answers. */
  seq: number;
  /** The kernel's explanation (extended ack), when it gave one. */
  message?: string;
  /** Offset of the offending attribute in the request. */
  offset?: number;
}

/**
 * Decode an NLMSG_ERROR payload: struct nlmsgerr (int error, then the
 * request's header, then its payload unless NLM_F_CAPPED), then with
 * NLM_F_ACK_TLVS the extended-ack attributes.
 */
export function decodeAck(message: Message): Ack {
  const p = message.payload;
  if (p.length < 4 + HEADER) throw new Error("netlink: short error message");
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const error = view.getInt32(0, true);
  const ack: Ack = { errno: error === 0 ? 0 : -error, seq: view.getUint32(12, true) };
  if (!(message.flags & NLM_F.ACK_TLVS)) return ack;
  const requestLength = view.getUint32(4, true);
  const start = message.flags & NLM_F.CAPPED ? 4 + HEADER : 4 + align(requestLength);
  const tlvs = attrMap(p.subarray(start));
  const text = attrString(tlvs.get(NLMSGERR_ATTR.MSG));
  if (text) ack.message = text;
  const offset = attrU32(tlvs.get(NLMSGERR_ATTR.OFFS));
  if (offset !== undefined) ack.offset = offset;
  return ack;
}

// ---------------------------------------------------------------------------
// Family headers.

/** struct ifinfomsg. */
export interface IfInfo {
  family: number;
  type: number;
  index: number;
  flags: number;
  change: number;
}

export const IFINFO_SIZE = 16;

export function encodeIfInfo(info: Partial<IfInfo> = {}): Uint8Array {
  const out = new Uint8Array(IFINFO_SIZE);
  const view = new DataView(out.buffer);
  view.setUint8(0, info.family ?? 0);
  view.setUint16(2, info.type ?? 0, true);
  view.setInt32(4, info.index ?? 0, true);
  view.setUint32(8, info.flags ?? 0, true);
  view.setUint32(12, info.change ?? 0, true);
  return out;
}

export function decodeIfInfo(payload: Uint8Array): IfInfo {
  const view = new DataView(payload.buffer, payload.byteOffset, IFINFO_SIZE);
  return {
    family: view.getUint8(0),
    type: view.getUint16(2, true),
    index: view.getInt32(4, true),
    flags: view.getUint32(8, true),
    change: view.getUint32(12, true),
  };
}

/** struct ifaddrmsg. */
export interface IfAddr {
  family: number;
  prefixlen: number;
  flags: number;
  scope: number;
  index: number;
}

export const IFADDR_SIZE = 8;

export function encodeIfAddr(addr: IfAddr): Uint8Array {
  const out = new Uint8Array(IFADDR_SIZE);
  const view = new DataView(out.buffer);
  view.setUint8(0, addr.family);
  view.setUint8(1, addr.prefixlen);
  view.setUint8(2, addr.flags);
  view.setUint8(3, addr.scope);
  view.setUint32(4, addr.index, true);
  return out;
}

export function decodeIfAddr(payload: Uint8Array): IfAddr {
  const view = new DataView(payload.buffer, payload.byteOffset, IFADDR_SIZE);
  return { family: view.getUint8(0), prefixlen: view.getUint8(1), flags: view.getUint8(2), scope: view.getUint8(3), index: view.getUint32(4, true) };
}

/** struct rtmsg. */
export interface RtMsg {
  family: number;
  dstLen: number;
  srcLen: number;
  tos: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  flags: number;
}

export const RTMSG_SIZE = 12;

export function encodeRtMsg(rt: Partial<RtMsg> & { family: number }): Uint8Array {
  const out = new Uint8Array(RTMSG_SIZE);
  const view = new DataView(out.buffer);
  const bytes = [rt.family, rt.dstLen ?? 0, rt.srcLen ?? 0, rt.tos ?? 0, rt.table ?? 0, rt.protocol ?? 0, rt.scope ?? 0, rt.type ?? 0];
  bytes.forEach((b, i) => view.setUint8(i, b));
  view.setUint32(8, rt.flags ?? 0, true);
  return out;
}

export function decodeRtMsg(payload: Uint8Array): RtMsg {
  const view = new DataView(payload.buffer, payload.byteOffset, RTMSG_SIZE);
  return {
    family: view.getUint8(0),
    dstLen: view.getUint8(1),
    srcLen: view.getUint8(2),
    tos: view.getUint8(3),
    table: view.getUint8(4),
    protocol: view.getUint8(5),
    scope: view.getUint8(6),
    type: view.getUint8(7),
    flags: view.getUint32(8, true),
  };
}

// ---------------------------------------------------------------------------
// Addresses.

/** Dotted IPv4 text → its 4 bytes (network order); throws on bad text. */
export function ipv4Bytes(text: string): Uint8Array {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) {
    throw new Error(`${JSON.stringify(text)} is not an IPv4 address`);
  }
  return new Uint8Array(parts.map(Number));
}

/** 4 or 16 address bytes → text (IPv6 unabbreviated but for leading zeros). */
export function ipText(bytes: Uint8Array): string {
  if (bytes.length === 4) return [...bytes].join(".");
  const groups: string[] = [];
  for (let i = 0; i + 1 < bytes.length; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::");
}
