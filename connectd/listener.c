/* listener.c: (stub) */
#include "connectd.h"
