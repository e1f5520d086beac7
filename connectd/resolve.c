/* resolve.c: (stub) */
#include "connectd.h"
