/* helperproto.c: (stub) */
#include "helperproto.h"
