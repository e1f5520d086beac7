/* helperproto.h: (stub) */
#ifndef HELPERPROTO_H
#define HELPERPROTO_H
#endif
