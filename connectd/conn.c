/* conn.c: (stub) */
#include "connectd.h"
