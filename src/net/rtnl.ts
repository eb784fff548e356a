/**
 * rtnetlink from TypeScript: a NETLINK_ROUTE socket (src/native/
 * netlink-socket.ts) and the link, address and route operations dokrust
 * needs, encoded and decoded by src/net/netlink.ts.  No `ip` is spawned.
 *
 * Every request asks for an acknowledgement; a refusal becomes a
 * NetlinkError worded "what: ENAME: the kernel's extended-ack text"
 * ("create veth dkv1: EEXIST: ..." ).  A socket belongs to the network
 * namespace it was created in: `Rtnl.open(nsFd)` makes one inside a
 * container's namespace, and every call on it acts there.
 */
import { DokrustError, errnoName } from "../errors.ts";
import { closeFd, inNetns, netlinkRecv, netlinkSend, NETLINK_ROUTE, openNetlink, openReadOnly } from "../native/netlink-socket.ts";
import {
  AF_INET,
  attrMap,
  attrString,
  attrU32,
  decodeAck,
  decodeIfAddr,
  decodeIfInfo,
  decodeRtMsg,
  encodeAttrs,
  encodeIfAddr,
  encodeIfInfo,
  encodeMessage,
  encodeRtMsg,
  IFA,
  IFADDR_SIZE,
  IFF_UP,
  IFINFO_SIZE,
  IFLA,
  IFLA_INFO,
  ipText,
  ipv4Bytes,
  messageAttrs,
  nestAttr,
  NLM_F,
  NLMSG,
  parseMessages,
  RT_SCOPE,
  RT_TABLE_MAIN,
  RTA,
  RTM,
  RTMSG_SIZE,
  RTN_UNICAST,
  RTPROT,
  s32Attr,
  strAttr,
  u32Attr,
  VETH_INFO_PEER,
  type Attr,
  type Message,
} from "./netlink.ts";

/** A request the kernel refused. */
export class NetlinkError extends DokrustError {
  override name = "NetlinkError";
  readonly errno: number;

  constructor(what: string, errno: number, text?: string) {
    super(`${what}: ${errnoName(errno)}${text ? `: ${text}` : ""}`);
    this.errno = errno;
  }
}

/** A link as a dump shows it. */
export interface Link {
  index: number;
  name: string;
  flags: number;
  kind?: string;
  master?: number;
  mtu?: number;
}

/** An address as a dump shows it. */
export interface Address {
  index: number;
  family: number;
  address: string;
  prefixlen: number;
}

/** A route of the main table as a dump shows it. */
export interface Route {
  family: number;
  /** "0.0.0.0" for the default route. */
  dst: string;
  dstLen: number;
  gateway?: string;
  oif?: number;
  protocol: number;
  scope: number;
  table: number;
}

/** Where to move a link: a namespace by process or by open fd. */
export type NetnsRef = { pid: number } | { fd: number };

function netnsAttr(ref: NetnsRef): Attr {
  return "pid" in ref ? u32Attr(IFLA.NET_NS_PID, ref.pid) : s32Attr(IFLA.NET_NS_FD, ref.fd);
}

const RECV_SIZE = 64 * 1024;

/** One NETLINK_ROUTE socket. */
export class Rtnl {
  #fd: number;
  #seq = Math.floor(Date.now() / 1000) & 0xffff;
  #buffer = new Uint8Array(RECV_SIZE);

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** A socket in the caller's namespace, or in the namespace `nsFd`. */
  static open(nsFd?: number): Rtnl {
    const fd = nsFd === undefined ? openNetlink(NETLINK_ROUTE) : inNetns(nsFd, () => openNetlink(NETLINK_ROUTE));
    return new Rtnl(fd);
  }

  /** A socket in the network namespace of process `pid`. */
  static openForPid(pid: number): Rtnl {
    const ns = openReadOnly(`/proc/${pid}/ns/net`);
    try {
      return Rtnl.open(ns);
    } finally {
      closeFd(ns);
    }
  }

  close(): void {
    if (this.#fd >= 0) closeFd(this.#fd);
    this.#fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Send a request and wait for its acknowledgement. */
  request(what: string, type: number, flags: number, body: Uint8Array, attrs: readonly Attr[] = []): void {
    const seq = ++this.#seq;
    netlinkSend(this.#fd, encodeMessage({ type, flags: flags | NLM_F.REQUEST | NLM_F.ACK, seq, body, attrs }));
    for (;;) {
      for (const m of this.#receive(what)) {
        if (m.seq !== seq || m.type !== NLMSG.ERROR) continue;
        const ack = decodeAck(m);
        if (ack.errno) throw new NetlinkError(what, ack.errno, ack.message);
        return;
      }
    }
  }

  /** Send a get request and return its one answer (undefined on ENODEV). */
  get(what: string, type: number, body: Uint8Array, attrs: readonly Attr[]): Message | undefined {
    const seq = ++this.#seq;
    netlinkSend(this.#fd, encodeMessage({ type, flags: NLM_F.REQUEST, seq, body, attrs }));
    for (;;) {
      for (const m of this.#receive(what)) {
        if (m.seq !== seq) continue;
        if (m.type !== NLMSG.ERROR) return m;
        const ack = decodeAck(m);
        if (ack.errno === 19 /* ENODEV */) return undefined;
        throw new NetlinkError(what, ack.errno || 71 /* EPROTO */, ack.message);
      }
    }
  }

  /** Send a dump request and collect every answer until NLMSG_DONE. */
  dump(what: string, type: number, body: Uint8Array): Message[] {
    const seq = ++this.#seq;
    netlinkSend(this.#fd, encodeMessage({ type, flags: NLM_F.REQUEST | NLM_F.DUMP, seq, body }));
    const found: Message[] = [];
    for (;;) {
      for (const m of this.#receive(what)) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG.DONE) return found;
        if (m.type === NLMSG.ERROR) {
          const ack = decodeAck(m);
          if (ack.errno) throw new NetlinkError(what, ack.errno, ack.message);
          return found;
        }
        found.push(m);
      }
    }
  }

  #receive(what: string): Message[] {
    try {
      const n = netlinkRecv(this.#fd, this.#buffer);
      return parseMessages(this.#buffer.slice(0, n));
    } catch (err) {
      throw err instanceof DokrustError ? err.wrap(what) : err;
    }
  }

  // -------------------------------------------------------------------------
  // Links.

  /** Every link of the namespace. */
  links(): Link[] {
    return this.dump("list links", RTM.GETLINK, encodeIfInfo()).map(decodeLink);
  }

  /** The link called `name`, or undefined (one get request, not a dump). */
  link(name: string): Link | undefined {
    const m = this.get(`look up link ${name}`, RTM.GETLINK, encodeIfInfo(), [strAttr(IFLA.IFNAME, name)]);
    return m ? decodeLink(m) : undefined;
  }

  #index(name: string, what: string): number {
    const link = this.link(name);
    if (!link) throw new NetlinkError(what, 19 /* ENODEV */, `no link named ${name}`);
    return link.index;
  }

  /** Create a bridge (down), with a fixed MAC address if given. */
  createBridge(name: string, mac?: Uint8Array): void {
    const attrs = [strAttr(IFLA.IFNAME, name), nestAttr(IFLA.LINKINFO, [strAttr(IFLA_INFO.KIND, "bridge")])];
    if (mac) attrs.push({ type: IFLA.ADDRESS, value: mac });
    this.request(`create bridge ${name}`, RTM.NEWLINK, NLM_F.CREATE | NLM_F.EXCL, encodeIfInfo(), attrs);
  }

  /**
   * Create a veth pair `name` ↔ `peer`; with `peerNetns` the peer is born
   * in that namespace (one request, so no window where it sits on the host).
   */
  createVeth(name: string, peer: string, peerNetns?: NetnsRef): void {
    const peerAttrs: Attr[] = [strAttr(IFLA.IFNAME, peer)];
    if (peerNetns) peerAttrs.push(netnsAttr(peerNetns));
    // VETH_INFO_PEER holds a struct ifinfomsg followed by the peer's attributes.
    const tail = encodeAttrs(peerAttrs);
    const peerInfo = new Uint8Array(IFINFO_SIZE + tail.length);
    peerInfo.set(encodeIfInfo());
    peerInfo.set(tail, IFINFO_SIZE);
    const data = nestAttr(IFLA_INFO.DATA, [{ type: VETH_INFO_PEER, value: peerInfo }]);
    const attrs = [strAttr(IFLA.IFNAME, name), nestAttr(IFLA.LINKINFO, [strAttr(IFLA_INFO.KIND, "veth"), data])];
    this.request(`create veth ${name}`, RTM.NEWLINK, NLM_F.CREATE | NLM_F.EXCL, encodeIfInfo(), attrs);
  }

  /** Move a link into another network namespace. */
  moveToNetns(name: string, target: NetnsRef): void {
    const what = `move ${name} into the network namespace of ${"pid" in target ? `pid ${target.pid}` : `fd ${target.fd}`}`;
    this.request(what, RTM.NEWLINK, 0, encodeIfInfo({ index: this.#index(name, what) }), [netnsAttr(target)]);
  }

  /** Rename a link (it must be down). */
  rename(name: string, to: string): void {
    const what = `rename ${name} to ${to}`;
    this.request(what, RTM.NEWLINK, 0, encodeIfInfo({ index: this.#index(name, what) }), [strAttr(IFLA.IFNAME, to)]);
  }

  /** Enslave a link to a bridge. */
  setMaster(name: string, master: string): void {
    const what = `attach ${name} to ${master}`;
    const masterIndex = this.#index(master, what);
    this.request(what, RTM.NEWLINK, 0, encodeIfInfo({ index: this.#index(name, what) }), [u32Attr(IFLA.MASTER, masterIndex)]);
  }

  /** Bring a link up or down. */
  setUp(name: string, up = true): void {
    const what = `bring ${name} ${up ? "up" : "down"}`;
    const body = encodeIfInfo({ index: this.#index(name, what), flags: up ? IFF_UP : 0, change: IFF_UP });
    this.request(what, RTM.NEWLINK, 0, body);
  }

  /** Delete a link (a veth takes its peer with it). */
  deleteLink(name: string): void {
    const what = `delete link ${name}`;
    this.request(what, RTM.DELLINK, 0, encodeIfInfo({ index: this.#index(name, what) }));
  }

  // -------------------------------------------------------------------------
  // Addresses and routes.

  /** Every address of the namespace (IPv4 and IPv6). */
  addresses(): Address[] {
    return this.dump("list addresses", RTM.GETADDR, encodeIfAddr({ family: 0, prefixlen: 0, flags: 0, scope: 0, index: 0 })).map((m) => {
      const head = decodeIfAddr(m.payload);
      const attrs = messageAttrs(m, IFADDR_SIZE);
      const raw = attrs.get(IFA.LOCAL) ?? attrs.get(IFA.ADDRESS) ?? new Uint8Array(4);
      return { index: head.index, family: head.family, address: ipText(raw), prefixlen: head.prefixlen };
    });
  }

  /** Add an IPv4 address "a.b.c.d/len" to a link. */
  addAddress(name: string, cidr: string): void {
    const what = `add address ${cidr} to ${name}`;
    const [ip = "", len = "32"] = cidr.split("/");
    const bytes = ipv4Bytes(ip);
    const prefixlen = Number(len);
    const body = encodeIfAddr({ family: AF_INET, prefixlen, flags: 0, scope: RT_SCOPE.UNIVERSE, index: this.#index(name, what) });
    const attrs: Attr[] = [{ type: IFA.LOCAL, value: bytes }, { type: IFA.ADDRESS, value: bytes }];
    if (prefixlen < 31) attrs.push({ type: IFA.BROADCAST, value: broadcast(bytes, prefixlen) });
    this.request(what, RTM.NEWADDR, NLM_F.CREATE | NLM_F.EXCL, body, attrs);
  }

  /** Every IPv4 route of the main table. */
  routes(): Route[] {
    return this.dump("list routes", RTM.GETROUTE, encodeRtMsg({ family: AF_INET }))
      .map(decodeRoute)
      .filter((r) => r.table === RT_TABLE_MAIN);
  }

  /** Add an IPv4 route: "default" or "a.b.c.d/len", via a gateway and/or a link. */
  addRoute(route: { dst: string; gateway?: string; dev?: string }): void {
    const what = `add route ${route.dst}${route.gateway ? ` via ${route.gateway}` : ""}${route.dev ? ` dev ${route.dev}` : ""}`;
    const [ip = "0.0.0.0", len = "32"] = route.dst === "default" ? ["0.0.0.0", "0"] : route.dst.split("/");
    const dstLen = Number(len);
    const attrs: Attr[] = [];
    if (dstLen > 0) attrs.push({ type: RTA.DST, value: ipv4Bytes(ip) });
    if (route.gateway) attrs.push({ type: RTA.GATEWAY, value: ipv4Bytes(route.gateway) });
    if (route.dev) attrs.push(u32Attr(RTA.OIF, this.#index(route.dev, what)));
    const scope = route.gateway ? RT_SCOPE.UNIVERSE : RT_SCOPE.LINK;
    const body = encodeRtMsg({ family: AF_INET, dstLen, table: RT_TABLE_MAIN, protocol: RTPROT.BOOT, scope, type: RTN_UNICAST });
    this.request(what, RTM.NEWROUTE, NLM_F.CREATE | NLM_F.EXCL, body, attrs);
  }
}

function decodeLink(m: Message): Link {
  const head = decodeIfInfo(m.payload);
  const attrs = messageAttrs(m, IFINFO_SIZE);
  const link: Link = { index: head.index, name: attrString(attrs.get(IFLA.IFNAME)) ?? "", flags: head.flags };
  const info = attrs.get(IFLA.LINKINFO);
  if (info) {
    const kind = attrString(attrMap(info).get(IFLA_INFO.KIND));
    if (kind) link.kind = kind;
  }
  const master = attrU32(attrs.get(IFLA.MASTER));
  if (master !== undefined) link.master = master;
  const mtu = attrU32(attrs.get(IFLA.MTU));
  if (mtu !== undefined) link.mtu = mtu;
  return link;
}

function decodeRoute(m: Message): Route {
  const head = decodeRtMsg(m.payload);
  const attrs = messageAttrs(m, RTMSG_SIZE);
  const dst = attrs.get(RTA.DST);
  const route: Route = {
    family: head.family,
    dst: dst ? ipText(dst) : head.family === AF_INET ? "0.0.0.0" : "::",
    dstLen: head.dstLen,
    protocol: head.protocol,
    scope: head.scope,
    table: attrU32(attrs.get(RTA.TABLE)) ?? head.table,
  };
  const gateway = attrs.get(RTA.GATEWAY);
  if (gateway) route.gateway = ipText(gateway);
  const oif = attrU32(attrs.get(RTA.OIF));
  if (oif !== undefined) route.oif = oif;
  return route;
}

/** The broadcast address of a.b.c.d/len. */
function broadcast(bytes: Uint8Array, prefixlen: number): Uint8Array {
  const n = ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
  const mask = prefixlen === 0 ? 0 : (0xffffffff << (32 - prefixlen)) >>> 0;
  const b = (n | ~mask) >>> 0;
  return new Uint8Array([b >>> 24, (b >>> 16) & 0xff, (b >>> 8) & 0xff, b & 0xff]);
}
