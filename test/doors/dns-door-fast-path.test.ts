/** The DNS door suite with UDP through the native fast path (dns.fastPath: on: fails if not built). */
import { dnsDoorSuite } from './dns-door-suite.js';

dnsDoorSuite('on');
